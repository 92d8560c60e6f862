"""Render benchmark: xrender's DRR against nanodrr and DiffDRR on a real CT (see README.md here).

    python benchmarks/render.py --size 200 --threads 2 --json

``xrender benchmark render`` with the peer libraries' cases (``peers.py`` here) registered;
``--help`` lists the options. A peer that is not installed is skipped (``pip install -e ".[peers]"``).
"""

from pathlib import Path

import typer

from xrender.cli.benchmark import load_cases, render_command  # importing xrender.cli sets OpenMP's environment

if __name__ == "__main__":
    load_cases(Path(__file__).with_name("peers.py"))
    typer.run(render_command)
