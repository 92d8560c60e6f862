"""The ``xrender evaluate`` and ``xrender register`` commands, as plain functions of request dataclasses.

A request's fields are the command's options of the same names (`xrender.recipes._config`): the
command line builds it with `xrender.recipes._config.from_options`, and it checks its values when
it is built, before anything is read or rendered.

`run_evaluation` draws seeded trials on a CT (or the phantom), registers each with every method and
writes ``results.json``, ``results.md`` (the summary and the capture-range table: R50 and success
per bin), ``capture_range.png`` and a few overlays. `run_registration`
registers one real X-ray to a CT and writes the pose, an overlay and optionally a GIF of the search.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from xrender.geometry import (
    ConeBeam,
    available_presets,
    available_views,
    get_preset,
    motion_from_pose,
    pose_from_motion,
    standard_pose,
)
from xrender.image import XRayPreprocessing, preprocess_xray
from xrender.io import atomic_output, is_dicom, load_state, read_carm, read_geometry, read_landmarks, read_xray
from xrender.plot import overlay_frame, write_gif
from xrender.recipes._config import option_group, parse_overrides
from xrender.recipes.distributed import Distributed
from xrender.recipes.registration.deepfluoro import load_specimen, specimen_config
from xrender.recipes.registration.evaluation import EvaluationConfig, TrialSet, check_equal_time, evaluate, make_trials
from xrender.recipes.registration.methods import MethodContext, MethodSettings, build_method
from xrender.recipes.registration.report import (
    capture_edges,
    capture_ranges,
    capture_table,
    handover_table,
    markdown_table,
    write_capture_range,
    write_json,
    write_overlay,
)
from xrender.registration import RegistrationProblem, RegistrationResult, register
from xrender.registration.regression import PoseRegressor
from xrender.render import render
from xrender.similarity.prost import NETWORK_FORMAT, ProSTNetwork
from xrender.subject import Subject, ct_subject, phantom_subject

__all__ = [
    "EvaluationRequest",
    "RegistrationRequest",
    "TrialSource",
    "init_motion",
    "pose_document",
    "run_evaluation",
    "run_registration",
    "trial_source",
]

#: HU above which voxels count as bone when no segmentation is given.
BONE_THRESHOLD_HU = 200.0


@dataclass(frozen=True)
class Models:
    """Trained models named on the command line, and the moving volume size the ProST one expects."""

    prost: ProSTNetwork | None = None
    prost_volume_size: int | None = None
    regressor: PoseRegressor | None = None


def load_models(model: Path | None, regressor: Path | None) -> Models:
    """Read a ProST network (and the volume size it was trained at) and a pose regressor, if given."""
    network, size = None, None
    if model is not None:
        state = load_state(model, file_format=NETWORK_FORMAT, version=1)
        network = ProSTNetwork.from_state(state, origin=str(model)).eval()
        config = state.get("summary", {}).get("config") or {}
        size = int(config["volume_size"]) if "volume_size" in config else None  # any version's training config
    return Models(network, size, None if regressor is None else PoseRegressor.load(regressor).eval())


def _ct_subjects(ct: Path | None, mask: Path | None, landmarks: Path | None) -> Callable[[int], Subject]:
    """``size -> Subject`` for a CT file (or the phantom when ``ct`` is ``None``)."""

    def at(size: int) -> Subject:
        if ct is None:
            subject = phantom_subject(size, BONE_THRESHOLD_HU)
        else:
            subject = ct_subject(ct, size, BONE_THRESHOLD_HU, mask)
        if landmarks is not None:
            subject = replace(subject, landmarks=read_landmarks(landmarks).points.to(torch.float64))
        return subject

    return at


def _moving(subject_at: Callable[[int], Subject], models: Models, subject: Subject) -> Any:
    """The bone volume at the ProST network's training size (the network's features depend on voxel size)."""
    if models.prost_volume_size is None or models.prost_volume_size == subject.full.shape[0]:
        return subject.moving
    return subject_at(models.prost_volume_size).moving


@dataclass(frozen=True)
class EvaluationRequest:
    """Everything ``xrender evaluate`` was asked to do: its options of the same names (see its ``--help``).

    Exactly one of ``ct``, ``phantom`` and ``deepfluoro`` gives the trials. ``trials`` (if set)
    replaces ``config.trials``; with ``deepfluoro`` it is the number of projections to read
    (``None``: all). ``per_bin`` (with ``config.stratify``) sets ``config.trials`` to that many
    trials per bin. The other `EvaluationConfig` fields but ``view`` are options too.

    Raises:
        ValueError: options that do not go together, no method, or an ``equal_time`` method
            that is not one of ``methods``; the message names the option.
    """

    ct: Path | None = None
    phantom: bool = False
    deepfluoro: Path | None = None
    specimen: str | None = None
    binning: int = 8
    methods: list[str] = field(default_factory=lambda: ["cmaes"])
    trials: int | None = None
    per_bin: int | None = None
    config: EvaluationConfig = field(
        default_factory=EvaluationConfig, metadata=option_group(besides=("trials", "view"))
    )
    out: Path = Path("xrender-evaluation")
    json_path: Path | None = None
    landmarks: Path | None = None
    mask: Path | None = None
    model: Path | None = None
    regressor: Path | None = None
    preset: str = "prost"
    volume_size: int = 128
    overlays: int = 3
    overrides: list[str] = field(default_factory=list)
    progress: bool = True

    def __post_init__(self) -> None:
        if sum([self.ct is not None, self.phantom, self.deepfluoro is not None]) != 1:
            raise ValueError("expected one of a CT path, --phantom or --deepfluoro FILE")
        if not self.methods:
            raise ValueError("--methods: expected at least one method, e.g. cmaes,prost+cmaes")
        stratify, trials = self.config.stratify, self.trials
        if self.per_bin is not None:
            if stratify is None:
                raise ValueError("--per-bin: applies only with --stratify")
            if trials is not None:
                raise ValueError("--per-bin: sets the number of trials; leave out --trials")
            trials = self.per_bin * (len(stratify) - 1)
        if trials is not None:
            object.__setattr__(self, "config", replace(self.config, trials=trials))
        if self.deepfluoro is None:
            if self.specimen is not None:
                raise ValueError("--specimen: applies only with --deepfluoro")
        else:
            if self.specimen is None:
                raise ValueError("--deepfluoro: expected --specimen (an ID such as 17-1882, or the paper's number 1-6)")
            if stratify is not None:
                raise ValueError("--stratify: applies to simulated trials (a CT or --phantom), not to --deepfluoro")
            if self.config.targets != EvaluationConfig.targets:
                raise ValueError(
                    "--targets: applies to simulated trials (a CT or --phantom); DeepFluoro's X-rays are real"
                )
        check_equal_time(self.config, self.methods)


@dataclass(frozen=True)
class TrialSource:
    """Where ``xrender evaluate`` gets its trials: a DeepFluoro specimen, a CT or the phantom.

    Attributes:
        name: for the report.
        subject_at: the subject at a given cube size (voxels per side).
        geometry: the C-arm of the X-rays.
        config: the trial settings (for DeepFluoro, one trial per projection read).
        trials: the trials of a subject.
    """

    name: str
    subject_at: Callable[[int], Subject]
    geometry: ConeBeam
    config: EvaluationConfig
    trials: Callable[[Subject], TrialSet]


def trial_source(request: EvaluationRequest) -> TrialSource:
    """The `TrialSource` of a request (see `TrialSource`)."""
    if request.deepfluoro is None:
        geometry, config = get_preset(request.preset), request.config
        return TrialSource(
            "phantom" if request.ct is None else str(request.ct),
            _ct_subjects(request.ct, request.mask, request.landmarks),
            geometry,
            config,
            partial(make_trials, geometry=geometry, config=config),
        )
    specimen = load_specimen(
        request.deepfluoro,
        request.specimen,
        binning=request.binning,
        limit=request.trials,
        progress=request.progress,
    )
    config = specimen_config(request.config, specimen)
    return TrialSource(
        f"{specimen.name} ({request.deepfluoro})",
        specimen.subject,
        specimen.geometry,
        config,
        partial(specimen.trials, config=config),
    )


def run_evaluation(request: EvaluationRequest, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the evaluation and write its files (rank 0 only under torchrun); return the JSON document."""
    job = Distributed.from_environment()
    settings = MethodSettings().replace(**parse_overrides(request.overrides))
    models = load_models(request.model, request.regressor)
    context = MethodContext(settings, models.prost, models.regressor)
    for method in request.methods:
        build_method(method, context)
    source = trial_source(request)
    subject, geometry, config = source.subject_at(request.volume_size), source.geometry, source.config
    trials = source.trials(subject)
    overlay_dir = request.out / "overlays"

    def keep_overlay(method: str, trial: int, result: RegistrationResult) -> None:
        if trial < request.overlays:
            name = f"{method.replace('+', '_').replace(':', '-')}_trial{trial}.png"
            write_overlay(
                overlay_dir / name,
                subject.full,
                geometry,
                trials.xrays[trial : trial + 1],
                result.pose,
                truth=trials.truth[trial],
                points=subject.points if subject.landmarks is not None else None,
                title=f"{method}, trial {trial}",
            )

    records = evaluate(
        subject,
        geometry,
        request.methods,
        context,
        config,
        moving=_moving(source.subject_at, models, subject),
        trials=trials,
        on_result=keep_overlay,
        progress=request.progress and job.is_main,
    )
    if not job.is_main:
        return {}
    settings_record = {
        **asdict(config),
        "preset": request.preset,
        "volume_size": request.volume_size,
        "settings": asdict(settings),
        "processes": job.world_size,
    }
    if request.deepfluoro is not None:
        settings_record |= {
            "deepfluoro": str(request.deepfluoro),
            "specimen": request.specimen,
            "binning": request.binning,
        }
    name = source.name
    ranges = capture_ranges(records, capture_edges(records, config.stratify), seed=config.seed)
    json_path = request.json_path or request.out / "results.json"
    document = write_json(json_path, records, settings_record, name, ranges)
    table = markdown_table(document["methods"]) + _equal_time_note(config, document["methods"])
    capture = capture_table(ranges)
    handover = handover_table(document["methods"])
    handover_section = f"\n## Handover (where a first stage left the pose)\n\n{handover}" if handover else ""
    with atomic_output(request.out / "results.md") as staging:
        staging.write_text(
            f"# Registration on {name}: {config.trials} trials ({_TARGET_WORDS.get(config.targets, config.targets)})"
            f"\n\n{table}\n"
            f"## Capture range (success against the initial mean TRE)\n\n{capture}{handover_section}",
            encoding="utf-8",
        )
    write_capture_range(request.out / "capture_range.png", ranges, config.success_mm)
    echo(table)
    echo(capture)
    if handover:
        echo(handover)
    echo(f"wrote {json_path}, results.md, capture_range.png" + (", overlays/" if request.overlays > 0 else ""))
    return document


#: The results' title words for each target model (real X-rays when DeepFluoro gives them).
_TARGET_WORDS = {"drr": "simulated: DRRs", "realistic": "simulated: realistic X-rays"}


def _equal_time_note(config: EvaluationConfig, summary: dict[str, Any]) -> str:
    """A line on the equal-time budgets under the summary table (empty without ``--equal-time``)."""
    if config.equal_time is None:
        return ""
    spent = {m: f for m, f in summary.items() if f["median_budget_seconds"] is not None}
    if not spent:
        return f"\nEqual time: no search-only method to give the wall time of {config.equal_time} to.\n"
    parts = [
        f"{m} used a median {f['median_seconds']:.1f} s of a median {f['median_budget_seconds']:.1f} s budget"
        for m, f in spent.items()
    ]
    return f"\nEqual time: each trial's wall time of {config.equal_time} is the budget; " + "; ".join(parts) + ".\n"


def _geometry(preset: str, geometry_file: Path | None) -> ConeBeam:
    if geometry_file is None:
        return get_preset(preset)
    return read_geometry(geometry_file)


@dataclass(frozen=True)
class RegistrationRequest:
    """Everything ``xrender register`` was asked to do: its options of the same names (see its ``--help``).

    ``init`` is the initial pose as a motion about the isocentre from the reference pose
    (`xrender.geometry.motion`: rotation vector in degrees, then mm), or a ``pose.json`` whose
    ``motion`` to use (see `init_motion`). The `XRayPreprocessing` fields are options too.
    ``sdd``, ``sid``, ``pixel_spacing`` and ``angles`` fill in a DICOM X-ray's missing tags.

    Raises:
        ValueError: an ``init`` that is neither six finite numbers nor a path, an unknown ``view``
            or ``preset`` (checked here, before anything is read).
    """

    ct: Path
    xray: Path
    out: Path = Path("xrender-registration")
    method: str = "cmaes"
    preset: str | None = None
    geometry_file: Path | None = None
    view: str | None = None
    init: tuple[float, float, float, float, float, float] | Path = (0.0,) * 6
    mask: Path | None = None
    model: Path | None = None
    regressor: Path | None = None
    preprocessing: XRayPreprocessing = field(default_factory=XRayPreprocessing, metadata=option_group())
    volume_size: int = 128
    gif: bool = False
    overrides: list[str] = field(default_factory=list)
    seed: int = 0
    progress: bool = True
    frame: int = 0
    sdd: float | None = None
    sid: float | None = None
    pixel_spacing: tuple[float, float] | None = None
    angles: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.init, Path):
            try:
                numbers = [float(v) for v in self.init]
            except (TypeError, ValueError):
                numbers = []
            if len(numbers) != 6 or not all(math.isfinite(v) for v in numbers):
                raise ValueError(f"init (--init): expected six finite numbers or a pose.json path, got {self.init!r}")
        if self.view is not None and self.view not in available_views():
            raise ValueError(
                f"view (--view): unknown view {self.view!r}; expected one of {', '.join(available_views())}"
            )
        if self.preset is not None and self.preset not in available_presets():
            presets = ", ".join(available_presets())
            raise ValueError(f"preset (--preset): unknown C-arm preset {self.preset!r}; expected one of {presets}")

    @property
    def from_dicom_tags(self) -> bool:
        """Whether the geometry and the reference pose come from the X-ray's DICOM tags.

        So it is for a DICOM X-ray unless ``--preset`` or ``--geometry`` says otherwise.
        """
        return self.preset is None and self.geometry_file is None and is_dicom(self.xray)


@dataclass(frozen=True)
class FixedImage:
    """The preprocessed X-ray, its geometry, the reference pose of ``--init`` and where they came from."""

    image: torch.Tensor
    geometry: ConeBeam
    reference: torch.Tensor
    source: str


def fixed_image(request: RegistrationRequest, isocenter: torch.Tensor) -> FixedImage:
    """Read and preprocess the X-ray; its C-arm from the DICOM tags, or from ``--preset``/``--geometry`` and ``--view``.

    Raises:
        ValueError: tag options (``--sdd``, ``--sid``, ``--spacing``, ``--angles``) without a DICOM
            X-ray read through its tags, ``--flip`` with one, or what the readers raise.
    """
    by_hand = {
        "--sdd": request.sdd,
        "--sid": request.sid,
        "--spacing": request.pixel_spacing,
        "--angles": request.angles,
    }
    if not request.from_dicom_tags:
        given = [name for name, value in by_hand.items() if value is not None]
        if given:
            raise ValueError(
                f"{', '.join(given)}: fill in a DICOM X-ray's tags; they do not apply with --preset, --geometry "
                "or a non-DICOM image (put the values in a --geometry JSON file instead)"
            )
        image = read_xray(request.xray, frame=request.frame)
        geometry = _geometry(request.preset or "prost", request.geometry_file)
        xray, geometry = preprocess_xray(image.pixels, geometry, request.preprocessing)
        view = request.view or "ap"
        return FixedImage(xray, geometry, standard_pose(view, geometry.sid, isocenter), f"view {view}")
    if request.preprocessing.flip != "none":
        raise ValueError("--flip: the DICOM tags decide the flip to the view from the source; leave --flip out")
    dicom, geometry, carm = read_carm(
        request.xray,
        isocenter,
        frame=request.frame,
        sdd=request.sdd,
        sid=request.sid,
        pixel_spacing=request.pixel_spacing,
        angles=request.angles,
        view=request.view,
    )
    xray, geometry = preprocess_xray(dicom.pixels, geometry, replace(request.preprocessing, flip=carm.flip))
    return FixedImage(xray, geometry, carm.pose, f"DICOM: {carm.describe()}")


def pose_document(
    method: str, result: RegistrationResult, fixed: FixedImage, isocenter: torch.Tensor
) -> dict[str, Any]:
    """The ``pose.json`` record of a registration (its keys are listed in the "Register a CT to an X-ray" tutorial).

    ``motion`` is the registered pose as a motion about ``isocenter`` from ``fixed.reference``, in
    ``--init``'s convention (`xrender.geometry.motion`), and ``geometry`` the C-arm of the
    registered (preprocessed) image as the ``ConeBeam`` fields ``--geometry`` reads.
    """
    return {
        "method": method,
        "pose_camera_to_world": result.pose.tolist(),
        "motion": motion_from_pose(result.pose, fixed.reference, isocenter).tolist(),
        "reference": fixed.source,
        "reference_pose_camera_to_world": fixed.reference.tolist(),
        "isocenter_mm": isocenter.tolist(),
        "geometry": asdict(fixed.geometry),
        "initial_pose_camera_to_world": result.initial.tolist(),
        "seconds": result.seconds,
        "stages": [
            {"name": s.name, "seconds": s.seconds, "evaluations": s.evaluations, "stop_reason": s.stop_reason}
            for s in result.stages
        ],
    }


def init_motion(init: tuple[float, ...] | Path, reference: torch.Tensor, isocenter: torch.Tensor) -> torch.Tensor:
    """The motion ``(6,)`` float64 that ``--init`` gives: its six numbers, or the ``motion`` of a ``pose.json``.

    A ``pose.json``'s motion is relative to its own reference pose and isocentre, so they must be
    this run's (same CT, X-ray, ``--view``, ``--preset`` or ``--geometry``); then the run starts
    at the pose the file records.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a file that is not a ``pose.json`` of ``xrender register``, or one recorded
            about another reference pose or isocentre.
    """
    if not isinstance(init, Path):
        return torch.tensor(init, dtype=torch.float64)
    try:
        document = json.loads(init.read_text(encoding="utf-8"))
        motion, file_reference, file_isocenter = (
            torch.tensor(document[key], dtype=torch.float64)
            for key in ("motion", "reference_pose_camera_to_world", "isocenter_mm")
        )
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"--init {init}: expected a pose.json written by xrender register (with motion, "
            f"reference_pose_camera_to_world and isocenter_mm), could not read it ({error!r})"
        ) from None
    shapes = (motion.shape, file_reference.shape, file_isocenter.shape)
    if shapes != ((6,), (4, 4), (3,)) or not bool(torch.isfinite(motion).all()):
        raise ValueError(
            f"--init {init}: expected motion of 6 finite numbers, a 4×4 reference_pose_camera_to_world and 3 "
            f"isocenter_mm numbers, got motion {motion.tolist()} and shapes {[tuple(s) for s in shapes]}"
        )
    same = torch.allclose(file_reference, reference.to(torch.float64), rtol=0.0, atol=1e-6) and torch.allclose(
        file_isocenter, isocenter.to(torch.float64), rtol=0.0, atol=1e-6
    )
    if not same:
        raise ValueError(
            f"--init {init}: its motion is about the reference {document.get('reference')!r} and isocentre "
            f"{file_isocenter.tolist()} mm; this run's reference pose or isocentre differs. Use the same CT, X-ray, "
            "--view, --preset or --geometry, or pass its motion as six numbers to apply it to this run's reference"
        )
    return motion


def run_registration(request: RegistrationRequest, echo: Callable[[str], None] = print) -> RegistrationResult:
    """Register the X-ray to the CT; write ``pose.json``, ``overlay.png`` (and ``registration.gif``)."""
    settings = MethodSettings().replace(**parse_overrides(request.overrides))
    models = load_models(request.model, request.regressor)
    stages = build_method(request.method, MethodContext(settings, models.prost, models.regressor, request.seed))
    subject_at = _ct_subjects(request.ct, request.mask, None)
    subject = subject_at(request.volume_size)
    iso = subject.full.isocenter.to(torch.float64)
    fixed = fixed_image(request, iso)
    xray, geometry, reference = fixed.image, fixed.geometry, fixed.reference
    echo(f"X-ray geometry from {fixed.source}")
    initial = pose_from_motion(init_motion(request.init, reference, iso), reference, iso)
    moving = _moving(subject_at, models, subject)
    problem = RegistrationProblem(subject.full, geometry, xray.float(), moving)
    result = register(problem, initial, stages, progress=request.progress)

    document = pose_document(request.method, result, fixed, iso)
    with atomic_output(request.out / "pose.json") as staging:
        staging.write_text(json.dumps(document, indent=2), encoding="utf-8")
    write_overlay(request.out / "overlay.png", subject.full, geometry, xray, result.pose, title=request.method)
    echo(f"registered in {result.seconds:.1f} s: " + ", ".join(f"{s.name} {s.seconds:.1f} s" for s in result.stages))
    motion = ",".join(f"{v:.6g}" for v in document["motion"])
    echo(f"motion about the isocentre {motion} (deg, mm): --init takes these numbers, or pose.json")
    echo(f"wrote {request.out / 'pose.json'} and {request.out / 'overlay.png'}")
    if request.gif:
        trajectory = result.trajectory
        keep = torch.linspace(0, trajectory.shape[0] - 1, min(40, trajectory.shape[0])).round().long()
        with torch.no_grad():
            frames = [
                overlay_frame(xray[0, 0], render(subject.full, geometry, trajectory[k][None])[0, 0]) for k in keep
            ]
        echo(f"wrote {write_gif(frames, request.out / 'registration.gif')}")
    return result
