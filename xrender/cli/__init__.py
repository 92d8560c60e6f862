"""The ``xrender`` command line: the application layer on top of the library and the recipes.

Each subcommand is a small function registered on one Typer app; the recipes
(`xrender.recipes`) are imported inside the commands that run them. ``python -m xrender.cli``
is the same program.

``xrender register``, ``evaluate`` and ``train`` hand their options to a request dataclass of
the recipes (`xrender.recipes._config.from_options`): each parameter fills the request field of
its name, so a parameter is named after its field and only its flag (``--set`` for
``overrides``) may differ. Options that several commands share are declared once, as the
``Annotated`` aliases below. ``tests/cli/test_cli_requests.py`` checks that each command's parameters
are its request's fields and that their defaults agree.
"""

from __future__ import annotations

import os

# Measured: torch's OpenMP threads and the fused numba backend's (a second OpenMP runtime) busy-wait
# for each other on a 2-core machine, slowing torch ops after a fused render 10–100× (a 100-step
# ProST descent: 122 s → 14 s; CMA-ES: 15.6 s → 4.2 s). OpenMP reads this when it loads, i.e. when
# torch is first imported, so it is set here, before the imports below load torch (`import xrender`
# does not). An explicit setting is kept. Library users who render with both runtimes set it in
# their own environment (docs/concepts/rendering.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import math
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from xrender.cli.benchmark import benchmark_app
from xrender.recipes.method_names import method_grammar

app = typer.Typer(
    name="xrender",
    help="Differentiable X-ray rendering and 2D/3D registration.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(benchmark_app, name="benchmark")  # `xrender benchmark render …`


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"xrender {version('xrender')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Differentiable X-ray rendering and 2D/3D registration."""


#: Options that several commands share, each declared once.
Progress = Annotated[bool, typer.Option(help="Show the progress bar.")]
BoneMask = Annotated[Path | None, typer.Option(help="Bone segmentation of the CT (default: HU > 200).")]
ProstModel = Annotated[Path | None, typer.Option(help="A ProST network (xrender train) for prost stages.")]
Regressor = Annotated[Path | None, typer.Option(help="A pose regressor for regression stages.")]
VolumeSize = Annotated[int, typer.Option(min=8, help="Voxels per side of the CT cube.")]
MethodOverrides = Annotated[list[str] | None, typer.Option("--set", help="Method setting key=value (repeatable).")]


@app.command(epilog="Example: xrender demo --out xrender-demo --trials 3")
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the outputs.")] = Path("xrender-demo"),
    size: Annotated[int, typer.Option(min=8, max=512, help="Phantom voxels per side.")] = 128,
    trials: Annotated[
        int, typer.Option(min=0, help="Simulated X-rays to register, one per 40 mm of initial error (0: skip).")
    ] = 5,
    progress: Progress = True,
) -> None:
    """Run the main job on the embedded phantom: figures, then CMA-ES vs ProST → CMA-ES registration."""
    from xrender.recipes.demo import run_demo

    result = run_demo(out, size=size, trials=trials, progress=progress)
    typer.echo(repr(result.volume))
    typer.echo(f"phantom voxelized in {result.seconds:.2f} s, AP DRR rendered in {result.render_seconds:.2f} s")
    typer.echo(f"wrote {result.figure_path}")
    typer.echo(f"wrote {result.drr_path}")
    if result.table is not None:
        typer.echo(f"\nRegistration of {trials} simulated X-rays (success = mean TRE < 10 mm):\n{result.table}")
        typer.echo(f"wrote {out / 'results.json'}, results.md, capture_range.png, overlays/")


@app.command(epilog="Example: xrender info path/to/ct.nii.gz")
def info(
    path: Annotated[Path, typer.Argument(help="A CT volume file, DICOM series folder or DeepFluoro .h5 file.")],
) -> None:
    """Print a volume's shape, spacing, orientation, value range and isocentre (or a DeepFluoro file's specimens)."""
    from xrender.info import describe

    try:
        typer.echo(describe(path))
    except (FileNotFoundError, ValueError) as error:
        _fail(error)


@app.command(epilog="Example: xrender download deepfluoro")
def download(
    dataset: Annotated[str, typer.Argument(help="The dataset: deepfluoro.")],
    folder: Annotated[
        Path | None, typer.Option(help="Cache folder (default $XRENDER_DATA or ~/.cache/xrender).")
    ] = None,
    progress: Progress = True,
) -> None:
    """Fetch a public dataset into the cache folder (or say where to put it by hand) and print its path."""
    from xrender.datasets.download import DATASETS, DownloadError

    try:
        if dataset not in DATASETS:
            raise ValueError(f"unknown dataset {dataset!r}; available: {', '.join(DATASETS)}")
        typer.echo(DATASETS[dataset](folder, progress=progress))
    except (ValueError, DownloadError) as error:
        _fail(error)


#: Voxels per side of the phantom volume rendered by ``xrender render --phantom``.
PHANTOM_VOXELS = 128


def _parse_numbers(text: str, option: str, form: str) -> list[float]:
    """``"a,b,…"`` → as many finite floats as ``form`` (e.g. ``"rx,ry,rz,tx,ty,tz"``) names."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) != form.count(",") + 1 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{option}: expected {form.count(',') + 1} finite numbers '{form}', got {text!r}")
    return values


#: The six numbers of a motion about the isocentre (`xrender.geometry.motion`), as ``--pose`` and ``--init`` take them.
MOTION_FORM = "rx,ry,rz,tu,tv,tdepth"
MOTION_HELP = (
    f"Volume motion '{MOTION_FORM}' about the isocentre: rotation vector (deg) about, then mm along, "
    "the reference camera's image-right, image-down and depth axes."
)


def _parse_pose(text: str, option: str = "--pose") -> list[float]:
    """``"rx,ry,rz,tu,tv,tdepth"`` → the six floats of a motion (degrees, mm)."""
    return _parse_numbers(text, option, MOTION_FORM)


#: Options of the commands that project a CT (``render``, ``simulate``), each declared once.
CtArgument = Annotated[Path | None, typer.Argument(help="A CT volume file (HU) or DICOM series folder.")]
ImageOut = Annotated[Path, typer.Option(help="Output image: .png (windowed), .npy or .nii.gz (raw).")]
PhantomFlag = Annotated[bool, typer.Option(help=f"Use the embedded pelvis phantom ({PHANTOM_VOXELS}³) as the CT.")]
CarmPreset = Annotated[str, typer.Option(help="C-arm geometry preset (deepfluoro, prost).")]
DetectorSize = Annotated[
    int | None, typer.Option(min=1, help="Bin the detector to about SIZE pixels per side (default: full).")
]
StandardView = Annotated[str, typer.Option(help="Standard view: ap, pa, ll, rl.")]
GeometryFile = Annotated[
    Path | None,
    typer.Option("--geometry", help="A JSON file of ConeBeam fields (or a pose.json) instead of --preset."),
]
Motion = Annotated[str, typer.Option(help=MOTION_HELP)]


def _projection_options(
    ct: Path | None,
    phantom: bool,
    out: Path,
    preset: str,
    geometry_file: Path | None,
    size: int | None,
    view: str,
    pose: str,
) -> tuple[Any, Any]:
    """Check the options of a projection of a CT (the CT is not read): the C-arm and the motion (float64)."""
    import torch

    from xrender.geometry import available_views, get_preset
    from xrender.io import match_suffix, read_geometry
    from xrender.render.output import IMAGE_WRITERS

    if (ct is None) == (not phantom):
        raise ValueError("expected a CT path or --phantom, not both or neither")
    if match_suffix(out, IMAGE_WRITERS) is None:
        raise ValueError(f"--out {out}: unsupported image format; expected one of {', '.join(IMAGE_WRITERS)}")
    if view not in available_views():
        raise ValueError(f"--view: unknown view {view!r}; expected one of {', '.join(available_views())}")
    params = torch.tensor(_parse_pose(pose), dtype=torch.float64)
    carm = get_preset(preset) if geometry_file is None else read_geometry(geometry_file)
    if size is not None:
        carm = carm.downsample(max(1, max(carm.height, carm.width) // size))
    return carm, params


def _read_hu(ct: Path | None, phantom: bool) -> Any:
    """The CT (HU) to project: the file, or the phantom voxelized at `PHANTOM_VOXELS` per side."""
    from xrender.io import read_volume
    from xrender.phantom import pelvis_phantom

    return pelvis_phantom().to_volume(PHANTOM_VOXELS, supersample=2) if phantom else read_volume(ct)


def _camera(volume: Any, carm: Any, view: str, params: Any) -> Any:
    """The camera-to-world pose of ``view`` moved by the motion ``params`` about the volume's isocentre."""
    from xrender.geometry import pose_from_motion, standard_pose

    iso = volume.isocenter.double()
    return pose_from_motion(params, standard_pose(view, carm.sid, iso), iso)


def _echo_projection(carm: Any, view: str, pose: str, camera: Any) -> None:
    """Print the C-arm, the view and motion, and the camera-to-world pose."""
    typer.echo(carm.describe())
    typer.echo(f"view                {view}, motion {pose} (deg, mm)")
    typer.echo(
        "pose (camera→world, mm)\n"
        + "\n".join("  [" + "  ".join(f"{v:+10.4f}" for v in row) + "]" for row in camera.tolist())
    )


@app.command(
    name="render",
    epilog="Examples: xrender render --phantom --view ap --out drr.png"
    " · xrender render path/to/ct.nii.gz --view ll --pose 0,0,10,0,0,0 --out drr.nii.gz",
)
def render_command(
    ct: CtArgument = None,
    out: ImageOut = Path("drr.png"),
    phantom: PhantomFlag = False,
    preset: CarmPreset = "prost",
    geometry_file: GeometryFile = None,
    size: DetectorSize = None,
    view: StandardView = "ap",
    pose: Motion = "0,0,0,0,0,0",
    hu_model: Annotated[str, typer.Option(help="HU → μ attenuation model (linear, bilinear).")] = "linear",
) -> None:
    """Render a DRR of a CT (or the phantom) in a standard view, optionally perturbed, and write it."""
    import torch

    from xrender.attenuation import ATTENUATION_MODELS, hu_to_mu
    from xrender.render import render
    from xrender.render.output import write_image

    try:  # every option is checked before the CT is read
        carm, params = _projection_options(ct, phantom, out, preset, geometry_file, size, view, pose)
        if hu_model not in ATTENUATION_MODELS:
            raise ValueError(
                f"--hu-model: unknown model {hu_model!r}; expected one of {', '.join(ATTENUATION_MODELS.names())}"
            )
        volume = hu_to_mu(_read_hu(ct, phantom), hu_model)
        camera = _camera(volume, carm, view, params)
        with torch.no_grad():
            image = render(volume, carm, camera)[0]
        written = write_image(image, carm, out, camera)
    except (FileNotFoundError, ValueError) as error:
        _fail(error)
    _echo_projection(carm, view, pose, camera)
    typer.echo(f"wrote {written}")


@app.command(
    name="simulate",
    epilog="Examples: xrender simulate --phantom --kvp 80 --dose 1e4 --view ap --out xray.png"
    " · xrender simulate path/to/ct.nii.gz --kvp 100 --dose 1e5 --pose 0,0,10,0,0,0 --seed 1 --out xray.dcm"
    " · xrender simulate path/to/ct.nii.gz --count 100 --poses prost-train --out dataset/xray.png",
)
def simulate_command(
    ct: CtArgument = None,
    out: Annotated[
        Path, typer.Option(help="Output image: .png (windowed), .npy, .nii.gz (raw) or .dcm (DX, with geometry tags).")
    ] = Path("xray.png"),
    phantom: PhantomFlag = False,
    preset: CarmPreset = "prost",
    geometry_file: GeometryFile = None,
    size: DetectorSize = None,
    view: StandardView = "ap",
    pose: Motion = "0,0,0,0,0,0",
    kvp: Annotated[int, typer.Option(help="Tube voltage, kVp: one of the shipped spectra (60, 80, 100, 120).")] = 100,
    dose: Annotated[float, typer.Option(help="Detected photons per pixel of the unattenuated beam (I₀).")] = 1e5,
    scatter: Annotated[
        bool, typer.Option(help="Add scatter (kernel superposition: about 0.5 of the primary behind 20 cm of water).")
    ] = True,
    csi_mm: Annotated[
        float, typer.Option(min=0.0, help="CsI scintillator thickness (mm); 0: a detector absorbing every photon.")
    ] = 0.6,
    psf: Annotated[float, typer.Option(min=0.0, help="Detector blur: Gaussian PSF sigma, pixels.")] = 0.5,
    electronic_noise: Annotated[float, typer.Option(min=0.0, help="Electronic noise sigma, photons.")] = 2.0,
    count: Annotated[
        int,
        typer.Option(
            min=1,
            help="Simulate COUNT X-rays, moved from --view/--pose by draws of --poses: OUT_0000…, and OUT.json "
            "with each pose and the geometry.",
        ),
    ] = 1,
    poses: Annotated[
        str, typer.Option(help="With --count: the pose distribution of the motions (prost-train, prost-initial, wide).")
    ] = "prost-train",
    seed: Annotated[int, typer.Option(min=0, help="Seeds the quantum noise (and the --count poses).")] = 0,
) -> None:
    """Simulate a realistic X-ray of a CT (or the phantom), or a dataset of them with their poses.

    The CT is split into air, soft tissue and bone, projected through the tube spectrum at --kvp,
    with scatter, a CsI detector and its blur, and sampled with quantum and electronic noise at
    --dose photons per pixel; the image written is −log(I/I₀) of the noisy reading.
    """
    from xrender.cli.simulate import SimulationOptions, check_simulation, write_simulations

    try:  # every option is checked before the CT is read
        carm, params = _projection_options(ct, phantom, out, preset, geometry_file, size, view, pose)
        options = SimulationOptions(kvp, dose, scatter, csi_mm, psf, electronic_noise, count, poses, seed)
        check_simulation(options)
        hu = _read_hu(ct, phantom)
        camera = _camera(hu, carm, view, params)
        written = write_simulations(hu, carm, camera, view, options, out)
    except (FileNotFoundError, ValueError) as error:
        _fail(error)
    _echo_projection(carm, view, pose, camera)
    typer.echo(f"spectrum            {kvp} kVp, {dose:g} photons per pixel, seed {seed}")
    typer.echo(f"wrote {written[0]}" + (f" … {written[-1]} ({len(written)} files)" if len(written) > 1 else ""))


@app.command(
    name="train",
    epilog="Examples: xrender train --phantom --minutes 5 --out prost.pt"
    " · xrender train path/to/ct.nii.gz --mask bone.nii.gz --scale paper --out prost.pt",
)
def train_command(
    ct: Annotated[
        list[Path] | None, typer.Argument(help="CT files or DICOM folders in HU (one: patient-specific; several).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Where to write the trained network (.pt).")] = Path("prost.pt"),
    phantom: Annotated[bool, typer.Option(help="Train on the embedded pelvis phantom.")] = False,
    mask: Annotated[list[Path] | None, typer.Option(help="A bone segmentation per CT (repeat in CT order).")] = None,
    iterations: Annotated[
        int | None, typer.Option(min=1, help="Iterations to reach (with a resume: in total).")
    ] = None,
    minutes: Annotated[float | None, typer.Option(min=0.01, help="Stop after this many minutes.")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue from this training checkpoint.")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="Checkpoint path (default: OUT with .ckpt).")] = None,
    config_file: Annotated[
        Path | None, typer.Option("--config", help="A .toml or .json file of TrainConfig fields.")
    ] = None,
    scale: Annotated[str, typer.Option(help="Starting config: cpu (64³, 64²) or paper (128³, 128²).")] = "cpu",
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a field: key=value (repeatable).")
    ] = None,
    progress: Progress = True,
) -> None:
    """Train a ProST similarity with the double-backward loss (torchrun-aware: run under torchrun for DDP)."""
    options = dict(locals())  # the TrainingRequest's fields
    from xrender.recipes._config import from_options
    from xrender.recipes.training.command import TrainingRequest, run_training

    try:
        run_training(from_options(TrainingRequest, options), echo=typer.echo)
    except (FileNotFoundError, ValueError) as error:  # CheckpointError is a ValueError
        _fail(error)


def _fail(error: Exception) -> NoReturn:
    """Print ``error`` in the command line's words (`_in_options`) and exit with status 2."""
    typer.echo(f"error: {_in_options(error)}", err=True)
    raise typer.Exit(code=2) from None


#: The option of each `MethodContext` field that holds a trained model.
MODEL_OPTIONS = {"prost": "--model", "regressor": "--regressor"}


def _in_options(error: Exception) -> str:
    """The message of ``error``, re-worded where the library or a recipe names what an option sets.

    The library's messages name its own parameters (a geometry, a mask, ``MethodContext.prost``);
    here they name the option that sets them and say what to change.
    """
    from xrender.geometry import available_presets
    from xrender.image import DetectorSizeError
    from xrender.preprocess import EmptyMaskError
    from xrender.recipes.method_names import MissingModelError
    from xrender.subject import NoBoneError

    def detector_size(e: DetectorSizeError) -> str:
        (rows, cols), (height, width) = e.detector, e.image
        return (
            f"the X-ray has {height}×{width} pixels but the C-arm geometry (--preset or --geometry) describes a "
            f"{rows}×{cols} detector; pass the --preset of the C-arm that took it ({', '.join(available_presets())}) "
            f"or --geometry with a JSON file of its ConeBeam fields (height {height}, width {width}, …)"
        )

    def no_bone(e: NoBoneError) -> str:
        low, high = e.value_range
        return (
            f"{e.name}: without --mask, bone is the voxels above {e.threshold_hu:g} HU, and there are none (the "
            f"values span {low:g} to {high:g}); pass --mask with a bone segmentation of the CT, or a CT in HU"
        )

    def empty_mask(e: EmptyMaskError) -> str:
        return (
            f"the --mask segmentation selects no voxel of the CT (it holds only the values {e.present}); "
            "pass a label map on the CT's grid whose bone voxels are non-zero"
        )

    def missing_model(e: MissingModelError) -> str:
        option = MODEL_OPTIONS[e.field]
        return f"method stage {e.stage!r} needs a trained {e.model}: pass {option} FILE"

    reworded: dict[type, Callable[[Any], str]] = {
        DetectorSizeError: detector_size,
        NoBoneError: no_bone,
        EmptyMaskError: empty_mask,
        MissingModelError: missing_model,
    }
    return next((words(error) for kind, words in reworded.items() if isinstance(error, kind)), str(error))


def _parse_bins(text: str) -> tuple[float, ...]:
    """``"0:200:20"`` (start:stop:step, stop included) or ``"0,20,50,100"`` → bin edges (mm) for ``--stratify``."""
    form = f"--stratify: expected START:STOP:STEP or E0,E1,… in mm (e.g. 0:200:20), got {text!r}"
    try:
        values = [float(v) for v in text.replace(":", ",").split(",")]
    except ValueError:
        raise ValueError(form) from None
    if ":" not in text:
        return tuple(values)
    if len(values) != 3 or not all(math.isfinite(v) for v in values) or values[2] <= 0:
        raise ValueError(form)
    start, stop, step = values
    count = (stop - start) / step
    if count < 1 or abs(count - round(count)) > 1e-9:
        raise ValueError(f"{form}: STOP − START must be a positive multiple of STEP")
    return tuple(start + k * step for k in range(round(count) + 1))


@app.command(
    name="evaluate",
    epilog="Examples: xrender evaluate --phantom --methods cmaes,prost+cmaes --model prost.pt --trials 10"
    " · xrender evaluate path/to/ct.nii.gz --methods cmaes,ncc-adam --trials 20 --out results",
)
def evaluate_command(
    ct: Annotated[Path | None, typer.Argument(help="A CT file or DICOM folder in HU (omit with --phantom).")] = None,
    phantom: Annotated[bool, typer.Option(help="Evaluate on the embedded pelvis phantom.")] = False,
    deepfluoro: Annotated[
        Path | None, typer.Option(help="A DeepFluoro HDF5 file: register its real X-rays (with --specimen).")
    ] = None,
    specimen: Annotated[
        str | None, typer.Option(help="DeepFluoro specimen: an ID (17-1882) or the paper's number 1-6.")
    ] = None,
    binning: Annotated[int, typer.Option(min=1, help="DeepFluoro: bin the cropped images by this factor.")] = 8,
    methods: Annotated[
        str, typer.Option(help=f"Comma-separated methods, e.g. cmaes,prost+cmaes; a method is {method_grammar()}.")
    ] = "cmaes",
    trials: Annotated[
        int | None,
        typer.Option(min=1, help="Simulated trials (default 20); with --deepfluoro the first N projections (all)."),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seeds the poses and the optimisers.")] = 0,
    out: Annotated[Path, typer.Option(help="Folder for results.md, capture_range.png, overlays/.")] = Path(
        "xrender-evaluation"
    ),
    json_path: Annotated[Path | None, typer.Option("--json", help="Results JSON (default OUT/results.json).")] = None,
    landmarks: Annotated[Path | None, typer.Option(help="Target points (.fcsv, .mrk.json, .csv) for the TRE.")] = None,
    mask: BoneMask = None,
    model: ProstModel = None,
    regressor: Regressor = None,
    true_distribution: Annotated[
        str, typer.Option("--true-poses", help="Pose distribution of the true poses.")
    ] = "prost-train",
    initial_distribution: Annotated[
        str, typer.Option("--initial-poses", help="Pose distribution of the initial offsets.")
    ] = "prost-initial",
    success_mm: Annotated[float, typer.Option(help="Success threshold on the mean TRE (mm).")] = 10.0,
    preset: Annotated[str, typer.Option(help="C-arm geometry preset of the simulated X-rays.")] = "prost",
    volume_size: VolumeSize = 128,
    overlays: Annotated[int, typer.Option(min=0, help="Overlay PNGs for the first N trials per method.")] = 3,
    overrides: MethodOverrides = None,
    progress: Progress = True,
    stratify: Annotated[
        str | None,
        typer.Option(help="Stratify trials by initial mean TRE over bins 'START:STOP:STEP' or 'E0,E1,…' (mm)."),
    ] = None,
    per_bin: Annotated[
        int | None, typer.Option(min=1, help="With --stratify: trials per bin (sets --trials to bins × N).")
    ] = None,
    equal_time: Annotated[
        str | None,
        typer.Option(help="Give search-only methods (cmaes) this method's wall time per trial, e.g. prost+cmaes."),
    ] = None,
    targets: Annotated[
        str,
        typer.Option(
            help="Simulated X-rays: drr (the registration's own renderer) or realistic (polyenergetic, scatter, "
            "noise; random kVp and dose per trial)."
        ),
    ] = "drr",
) -> None:
    """Compare registration methods on simulated X-rays of a CT, or on DeepFluoro's real ones (torchrun-aware)."""
    options = dict(locals())  # the EvaluationRequest's fields and its EvaluationConfig's
    from xrender.recipes.registration.command import run_evaluation

    try:
        run_evaluation(_evaluation_request(options), echo=typer.echo)
    except (FileNotFoundError, ValueError) as error:
        _fail(error)


def _evaluation_request(options: dict[str, Any]) -> Any:
    """The `EvaluationRequest` of ``xrender evaluate``'s options, ``--methods`` and ``--stratify`` parsed."""
    from xrender.recipes._config import from_options
    from xrender.recipes.registration.command import EvaluationRequest

    stratify = options["stratify"]
    parsed = {
        "methods": [m.strip() for m in options["methods"].split(",") if m.strip()],
        "stratify": None if stratify is None else _parse_bins(stratify),
    }
    return from_options(EvaluationRequest, options | parsed)


@app.command(
    name="register",
    epilog="Examples: xrender register path/to/ct.nii.gz xray.png --negative-log --method cmaes"
    " · xrender register path/to/ct.nii.gz xray.dcm --method prost+cmaes --model prost.pt --gif",
)
def register_command(
    ct: Annotated[Path, typer.Argument(help="A CT file or DICOM folder in HU.")],
    xray: Annotated[Path, typer.Argument(help="The X-ray: PNG, TIFF, NPY, DICOM, NIfTI/MHA.")],
    out: Annotated[Path, typer.Option(help="Folder for pose.json, overlay.png, registration.gif.")] = Path(
        "xrender-registration"
    ),
    method: Annotated[
        str, typer.Option(help=f"Registration method, e.g. cmaes or prost+cmaes: {method_grammar()}.")
    ] = "cmaes",
    preset: Annotated[
        str | None, typer.Option(help="C-arm geometry preset of the full X-ray (default: DICOM tags, else prost).")
    ] = None,
    geometry_file: GeometryFile = None,
    view: Annotated[
        str | None, typer.Option(help="Reference view of the initial pose: ap, pa, ll, rl (default: DICOM tags, ap).")
    ] = None,
    frame: Annotated[int, typer.Option(min=0, help="Frame of a multi-frame DICOM file.")] = 0,
    sdd: Annotated[float | None, typer.Option(help="DICOM: source-to-detector distance (mm) if not tagged.")] = None,
    sid: Annotated[float | None, typer.Option(help="DICOM: source-to-isocentre distance (mm) if not tagged.")] = None,
    pixel_spacing: Annotated[
        str | None, typer.Option("--spacing", help="DICOM: detector pixel spacing 'ROW,COL' (mm) if not tagged.")
    ] = None,
    angles: Annotated[
        str | None, typer.Option(help="DICOM: positioner 'PRIMARY,SECONDARY' angles (deg) if not tagged.")
    ] = None,
    init: Annotated[
        str, typer.Option(help=f"Initial pose: {MOTION_HELP} Or a pose.json of a previous run (its motion).")
    ] = "0,0,0,0,0,0",
    mask: BoneMask = None,
    model: ProstModel = None,
    regressor: Regressor = None,
    crop: Annotated[str, typer.Option(help="Pixels to crop: top,left,bottom,right.")] = "0,0,0,0",
    flip: Annotated[str, typer.Option(help="none, horizontal, vertical or rot180.")] = "none",
    negative_log: Annotated[bool, typer.Option(help="Take −log(I/I0) of a raw intensity image.")] = False,
    i0: Annotated[float | None, typer.Option(help="I0 for --negative-log (default: the image maximum).")] = None,
    normalize: Annotated[str, typer.Option(help="none, minmax or zscore.")] = "none",
    binning: Annotated[int, typer.Option(min=1, help="Average-pool the image (and geometry) by this factor.")] = 1,
    volume_size: VolumeSize = 128,
    gif: Annotated[bool, typer.Option(help="Also write an animated GIF of the search.")] = False,
    seed: Annotated[int, typer.Option(min=0, help="Seeds the stochastic optimisers.")] = 0,
    overrides: MethodOverrides = None,
    progress: Progress = True,
) -> None:
    """Register a real X-ray image to a CT; write the pose (JSON), an overlay and optionally a GIF.

    A DICOM X-ray brings its own C-arm geometry and reference pose from its tags (positioner angles,
    distances, imager pixel spacing); --sdd, --sid, --spacing and --angles fill in missing tags.
    """
    options = dict(locals())  # the RegistrationRequest's fields and its XRayPreprocessing's
    from xrender.recipes.registration.command import run_registration

    try:
        run_registration(_registration_request(options), echo=typer.echo)
    except (FileNotFoundError, ValueError) as error:
        _fail(error)


def _registration_request(options: dict[str, Any]) -> Any:
    """The `RegistrationRequest` of ``xrender register``'s options, the texts of numbers parsed."""
    from xrender.recipes._config import from_options
    from xrender.recipes.registration.command import RegistrationRequest

    crop, init, spacing, angles = options["crop"], options["init"], options["pixel_spacing"], options["angles"]
    margins = tuple(int(v) for v in crop.split(","))
    if len(margins) != 4:
        raise ValueError(f"--crop: expected four ints top,left,bottom,right, got {crop!r}")
    parsed = {
        "crop": margins,
        "init": Path(init) if init.endswith(".json") else tuple(_parse_pose(init, "--init")),
        "pixel_spacing": None if spacing is None else tuple(_parse_numbers(spacing, "--spacing", "row,col")),
        "angles": None if angles is None else tuple(_parse_numbers(angles, "--angles", "primary,secondary")),
    }
    return from_options(RegistrationRequest, options | parsed)
