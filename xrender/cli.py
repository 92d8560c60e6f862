"""The ``xrender`` command line. Each subcommand is a small function registered on one Typer app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="xrender",
    help="Differentiable X-ray rendering and 2D/3D registration.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the outputs.")] = Path("xrender-demo"),
    size: Annotated[int, typer.Option(min=8, max=512, help="Phantom voxels per side.")] = 128,
) -> None:
    """Run the main job on the embedded phantom (no data needed) and write its figure."""
    from xrender.demo import run_demo

    result = run_demo(out, size=size)
    typer.echo(repr(result.volume))
    typer.echo(f"phantom voxelized in {result.seconds:.2f} s")
    typer.echo(f"wrote {result.figure_path}")


@app.command()
def info(path: Annotated[Path, typer.Argument(help="A CT volume file or DICOM series folder.")]) -> None:
    """Print a volume's shape, spacing, orientation, value range and isocentre."""
    from xrender.info import describe

    try:
        typer.echo(describe(path))
    except (FileNotFoundError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None


if __name__ == "__main__":  # pragma: no cover
    app()
