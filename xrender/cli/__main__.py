"""``python -m xrender.cli``: the ``xrender`` command."""

from xrender.cli import app

app()
