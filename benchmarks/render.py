"""Render benchmark: xrender's DRR against nanodrr and DiffDRR on a real CT (see README.md here).

    python benchmarks/render.py --size 200 --threads 2 --json

Same as ``xrender benchmark render``; ``--help`` lists the options.
"""

import typer

from xrender.benchmark import render_command

if __name__ == "__main__":
    typer.run(render_command)
