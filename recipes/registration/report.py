"""Writing an evaluation: the JSON results, markdown tables, the capture-range plot and overlays.

The JSON has a top-level ``methods`` object keyed by method name (`summarize`'s figures per
method, and with capture ranges a ``capture_range`` block: `xrender.metrics.CaptureRange.to_dict`),
plus ``config`` (how the trials were drawn), ``subject`` and every ``trials`` record.

Capture-range bins (`capture_edges`) are the stratification's when the trials were stratified;
otherwise about four trials per bin and method (2–10 equal bins between the smallest and the
largest initial mean TRE).
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from xrender.geometry import ConeBeam, project
from xrender.io import atomic_output
from xrender.metrics import CaptureRange, capture_range
from xrender.plot import plot_capture_range, plot_registration_overlay, save_figure
from xrender.recipes.registration.evaluation import TrialRecord, summarize
from xrender.render import render
from xrender.volume import Volume

__all__ = [
    "capture_edges",
    "capture_ranges",
    "capture_table",
    "handover_table",
    "markdown_table",
    "write_capture_range",
    "write_json",
    "write_overlay",
]

_COLUMNS = (
    ("success", "success_rate", "{:.0%}"),
    ("median mTRE (mm)", "median_mtre_mm", "{:.1f}"),
    ("median mTRE of successes (mm)", "median_mtre_success_mm", "{:.2f}"),
    ("median rotation error (°)", "median_rotation_error_deg", "{:.2f}"),
    ("median translation error (mm)", "median_translation_error_mm", "{:.1f}"),
    ("median reprojection distance (mm)", "median_reprojection_mm", "{:.2f}"),
    ("median seconds", "median_seconds", "{:.1f}"),
)


#: The columns of `handover_table`: title, key of ``median_handover``, format.
_HANDOVER_COLUMNS = (
    ("median mTRE (mm)", "mtre_mm", "{:.1f}"),
    ("median rotation error (°)", "rotation_error_deg", "{:.1f}"),
    ("median depth error (mm)", "depth_error_mm", "{:+.1f}"),
)


def _cell(value: Any, template: str) -> str:
    return "—" if value is None else template.format(value)


def markdown_table(summary: Mapping[str, Mapping[str, Any]]) -> str:
    """One row per method, one column per summary figure."""
    header = "| method | trials | " + " | ".join(title for title, _, _ in _COLUMNS) + " |"
    rule = "| --- " * (len(_COLUMNS) + 2) + "|"
    rows = [
        f"| {method} | {figures['trials']} | "
        + " | ".join(_cell(figures[key], template) for _, key, template in _COLUMNS)
        + " |"
        for method, figures in summary.items()
    ]
    return "\n".join([header, rule, *rows]) + "\n"


def handover_table(summary: Mapping[str, Mapping[str, Any]]) -> str:
    """Where each first stage left the pose (`summarize`'s ``median_handover``), split by the method's
    final outcome; ``""`` when no method has a first stage."""
    rows = [
        f"| {method} | {stage} | {outcome} | "
        + " | ".join(_cell(errors[key], template) for _, key, template in _HANDOVER_COLUMNS)
        + " |"
        for method, figures in summary.items()
        for stage, outcomes in figures.get("median_handover", {}).items()
        for outcome, errors in outcomes.items()
    ]
    if not rows:
        return ""
    header = "| method | stage | then | " + " | ".join(title for title, _, _ in _HANDOVER_COLUMNS) + " |"
    return "\n".join([header, "| --- " * (len(_HANDOVER_COLUMNS) + 3) + "|", *rows]) + "\n"


def capture_edges(records: Sequence[TrialRecord], stratify: Sequence[float] | None = None) -> tuple[float, ...]:
    """Bin edges (mm) of the capture range: ``stratify`` if given, else about four trials per bin and method.

    Without ``stratify``: ``min(10, max(2, trials per method // 4))`` equal bins from the smallest
    to the largest initial mean TRE of all records.

    Raises:
        ValueError: no records.
    """
    if stratify is not None:
        return tuple(float(e) for e in stratify)
    if not records:
        raise ValueError("capture_edges: expected at least one trial record")
    methods = {r.method for r in records}
    bins = min(10, max(2, len(records) // (4 * len(methods))))
    tre = [r.initial_mtre_mm for r in records]
    low, high = min(tre), max(tre)
    return tuple(float(e) for e in np.linspace(low, high if high > low else low + 1.0, bins + 1))


def capture_ranges(
    records: Sequence[TrialRecord], edges: Sequence[float], *, seed: int = 0, resamples: int = 1000
) -> dict[str, CaptureRange]:
    """Per method, in record order: its `xrender.metrics.capture_range` over ``edges`` (bootstrap seeded ``seed``)."""
    ranges = {}
    for method in dict.fromkeys(r.method for r in records):
        rows = [r for r in records if r.method == method]
        ranges[method] = capture_range(
            [r.initial_mtre_mm for r in rows], [r.success for r in rows], edges, seed=seed, resamples=resamples
        )
    return ranges


def capture_table(ranges: Mapping[str, CaptureRange]) -> str:
    """One row per method: R50 with its bootstrap interval, then ``successes/trials`` per bin.

    Assumes every method shares the first method's bins (as `capture_ranges` gives them). An
    infinite R50 (∞) means the fitted success never falls to 50 %; ``—`` marks an empty bin.
    """
    first = next(iter(ranges.values()))
    edges = first.edges_mm
    labels = [f"{low:.4g}–{high:.4g} mm" for low, high in itertools.pairwise(edges)]
    level = f"{first.confidence:.0%}"
    header = f"| method | R50 (mm) [{level} CI] | " + " | ".join(labels) + " |"
    rule = "| --- " * (len(labels) + 2) + "|"
    rows = []
    for method, capture in ranges.items():
        cells = [
            "—" if rate is None else f"{k}/{n} ({rate:.0%})"
            for k, n, rate in zip(capture.successes, capture.counts, capture.rates)
        ]
        rows.append(f"| {method} | {capture.r50_text(unit='')} | " + " | ".join(cells) + " |")
    return "\n".join([header, rule, *rows]) + "\n"


def write_json(
    path: str | os.PathLike,
    records: Sequence[TrialRecord],
    config: Mapping[str, Any],
    subject: str,
    ranges: Mapping[str, CaptureRange] | None = None,
) -> dict[str, Any]:
    """Write ``{"methods": summary, "config", "subject", "trials"}`` atomically; return it.

    With ``ranges``, each method's summary gets its ``capture_range`` block.
    """
    summary = summarize(records)
    for method, capture in (ranges or {}).items():
        summary[method]["capture_range"] = capture.to_dict()
    document = {
        "methods": summary,
        "config": dict(config),
        "subject": subject,
        "trials": [r.to_dict() for r in records],
    }
    with atomic_output(Path(path)) as staging, open(staging, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
    return document


def write_capture_range(path: str | os.PathLike, ranges: Mapping[str, CaptureRange], threshold_mm: float) -> Path:
    """The capture-range figure (`xrender.plot.plot_capture_range`) of ``ranges``."""
    return save_figure(plot_capture_range(ranges, threshold_mm=threshold_mm), path)


def write_overlay(
    path: str | os.PathLike,
    volume: Volume,
    geometry: ConeBeam,
    xray: Float[Tensor, "1 1 H W"],
    pose: Float[Tensor, "4 4"],
    *,
    truth: Float[Tensor, "4 4"] | None = None,
    points: Float[Tensor, "N 3"] | None = None,
    title: str = "",
) -> Path:
    """The X-ray with the edges of the DRR at ``pose`` and, if given, ``points`` projected by both poses."""
    with torch.no_grad():
        drr = render(volume, geometry, pose.to(torch.float64)[None])[0, 0]
    K = geometry.intrinsics(dtype=torch.float64)
    estimated = None if points is None else project(points.to(torch.float64), pose.to(torch.float64), K)
    true = None if points is None or truth is None else project(points.to(torch.float64), truth, K)
    figure = plot_registration_overlay(xray[0, 0], drr, title=title, true_pixels=true, estimated_pixels=estimated)
    return save_figure(figure, path)
