"""The command-line reference page (docs/reference/cli.md) is generated from the app and names everything in it."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import typer

from xrender.cli import app

DOCS = Path(__file__).resolve().parents[2] / "docs"
_spec = importlib.util.spec_from_file_location("cli_reference", DOCS / "_hooks" / "cli_reference.py")
cli_reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cli_reference)


def _sections(markdown: str) -> dict[str, str]:
    """``{"xrender render": its section, …}``, split at the ``## `…` `` headings."""
    parts = re.split(r"^## `([^`]+)`$", markdown, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _visible(command, path="xrender"):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        if not sub.hidden:
            yield from _visible(sub, f"{path} {name}")


def test_every_command_option_and_example_is_on_the_page():
    sections = _sections(cli_reference.cli_markdown())
    commands = dict(_visible(typer.main.get_command(app)))
    assert sections.keys() == commands.keys()
    assert {"xrender render", "xrender register", "xrender benchmark render"} <= sections.keys()
    for path, command in commands.items():
        text = sections[path]
        assert f"```text\n{path} " in text  # the usage line
        for param in command.params:
            row = re.search(rf"^\| `{re.escape(param.opts[0])}[ `.][^`]*`", text, re.MULTILINE)
            assert row, (path, param.opts)
            assert all(f" {flag}" in row[0] for flag in param.secondary_opts), (path, row[0])
        for example in re.split(r"^Examples?: | · ", command.epilog or ""):
            assert not example or f"\n{example.strip()}\n" in text, (path, example)


def test_the_info_section():
    section = _sections(cli_reference.cli_markdown())["xrender info"]
    assert section == (
        "\n\n```text\nxrender info [OPTIONS] {path}\n```\n\n"
        "Print a volume's shape, spacing, orientation, value range and isocentre"
        " (or a DeepFluoro file's specimens).\n\n"
        "| Argument | Description | Default, range |\n| --- | --- | --- |\n"
        "| `path <path>` | A CT volume file, DICOM series folder or DeepFluoro .h5 file. | **required** |\n\n"
        "| Option | Description | Default, range |\n| --- | --- | --- |\n"
        "| `--help` | Show this message and exit. |  |\n\n"
        "**Examples**\n\n```bash\nxrender info path/to/ct.nii.gz\n```\n\n"
    )


def test_defaults_ranges_and_flags_are_columns():
    section = _sections(cli_reference.cli_markdown())["xrender demo"]
    assert "| `--size <int range>` | Phantom voxels per side. | default `128`, `8<=x<=512` |" in section
    assert "| `--progress / --no-progress` | Show the progress bar. | default `progress` |" in section


def test_help_text_is_shown_literally():
    assert cli_reference._text("nevergrad[:<name>] a|b *c* x_y") == r"nevergrad\[:&lt;name&gt;\] a\|b \*c\* x\_y"


def test_a_small_app():
    """Hidden commands are left out, paragraphs of a docstring kept, an epilog that is not examples is text."""
    small = typer.Typer(add_completion=False)

    @small.command(epilog="Runs offline.")
    def go(count: int = typer.Option(3, help="How many.")) -> None:
        """Go.

        Second paragraph.
        """

    @small.command(hidden=True)
    def secret() -> None:
        """Hidden."""

    markdown = cli_reference.cli_markdown(small)
    sections = _sections(markdown)
    assert list(sections) == ["xrender", "xrender go"]
    assert "Go.\n\nSecond paragraph.\n" in sections["xrender go"]
    assert "Runs offline." in sections["xrender go"]
    assert "```bash" not in markdown
    assert "secret" not in markdown


def test_the_hook_fills_only_its_page():
    page = (DOCS / cli_reference.PAGE).read_text(encoding="utf-8")
    assert cli_reference.MARKER in page
    other = SimpleNamespace(file=SimpleNamespace(src_uri="index.md"))
    assert cli_reference.on_page_markdown(cli_reference.MARKER, other) == cli_reference.MARKER
    ours = SimpleNamespace(file=SimpleNamespace(src_uri=cli_reference.PAGE))
    filled = cli_reference.on_page_markdown(page, ours)
    assert cli_reference.MARKER not in filled
    assert "## `xrender register`" in filled
    with pytest.raises(ValueError, match="must hold the marker"):
        cli_reference.on_page_markdown("# Command line\n", ours)
