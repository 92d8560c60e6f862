"""Writing an evaluation: the JSON results, a markdown table, the capture-range plot and overlays.

The JSON has a top-level ``methods`` object keyed by method name (`summarize`'s figures per
method), plus ``config`` (how the trials were drawn), ``subject`` and every ``trials`` record.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from recipes.registration.evaluation import TrialRecord, summarize
from xrender.geometry import ConeBeam, project
from xrender.io import atomic_output
from xrender.plot import plot_capture_range, plot_registration_overlay, save_figure
from xrender.render import render
from xrender.volume import Volume

__all__ = ["markdown_table", "write_capture_range", "write_json", "write_overlay"]

_COLUMNS = (
    ("success", "success_rate", "{:.0%}"),
    ("median mTRE (mm)", "median_mtre_mm", "{:.1f}"),
    ("median mTRE of successes (mm)", "median_mtre_success_mm", "{:.2f}"),
    ("median rotation error (°)", "median_rotation_error_deg", "{:.2f}"),
    ("median translation error (mm)", "median_translation_error_mm", "{:.1f}"),
    ("median reprojection distance (mm)", "median_reprojection_mm", "{:.2f}"),
    ("median seconds", "median_seconds", "{:.1f}"),
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


def write_json(
    path: str | os.PathLike, records: Sequence[TrialRecord], config: Mapping[str, Any], subject: str
) -> dict[str, Any]:
    """Write ``{"methods": summary, "config", "subject", "trials"}`` atomically; return it."""
    document = {
        "methods": summarize(records),
        "config": dict(config),
        "subject": subject,
        "trials": [r.to_dict() for r in records],
    }
    with atomic_output(Path(path)) as staging, open(staging, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
    return document


def write_capture_range(path: str | os.PathLike, records: Sequence[TrialRecord], threshold_mm: float) -> Path:
    """Success rate against the initial mean TRE, one line per method."""
    methods = list(dict.fromkeys(r.method for r in records))
    initial = {m: torch.tensor([r.initial_mtre_mm for r in records if r.method == m]) for m in methods}
    success = {m: torch.tensor([r.success for r in records if r.method == m]) for m in methods}
    bins = min(10, max(2, len(records) // (4 * len(methods))))  # about four trials per bin and method
    return save_figure(plot_capture_range(initial, success, bins=bins, threshold_mm=threshold_mm), path)


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
