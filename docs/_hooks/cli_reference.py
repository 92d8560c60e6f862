"""mkdocs hook: the command-line reference page, written at build time from the ``xrender`` app itself.

``docs/reference/cli.md`` holds a short introduction and the marker `MARKER`; when mkdocs reads the
page, the marker becomes one section per command (usage, description, arguments, options, examples),
produced by `cli_markdown` from the click command tree of the Typer app (`typer.main.get_command`;
Typer ships its own copy of click, so the objects are duck-typed here), each parameter's
``get_help_record`` being the record ``--help`` prints. So the page always says
what the installed command line does; ``tests/cli/test_cli_reference.py`` checks that it names every
command and option.
"""

from __future__ import annotations

import html
import re
from typing import Any

import typer

MARKER = "<!-- xrender-cli-reference -->"
PAGE = "reference/cli.md"

#: A help record's trailing ``  [default: …; x>=1]``, which click appends to the parameter's help.
_EXTRA = re.compile(r"^(?P<help>.*?)\s*\[(?P<extra>[^\[\]]*)\]$", re.DOTALL)
#: An epilog of examples: ``Example: CMD`` or ``Examples: CMD · CMD``.
_EXAMPLES = re.compile(r"^Examples?:\s*(?P<commands>.*)$", re.DOTALL)


def _text(value: str) -> str:
    """Plain help text as markdown that shows it literally (in a paragraph or a table cell)."""
    escaped = html.escape(" ".join(value.split()), quote=False)
    return re.sub(r"([\\`*_\[\]|])", r"\\\1", escaped)


def _paragraphs(value: str) -> str:
    return "\n\n".join(_text(p) for p in re.split(r"\n\s*\n", value.strip()) if p.strip())


def _commands(command: Any, ctx: Any) -> list[tuple[Any, Any]]:
    """``command`` and its visible subcommands, depth first, each with its context (for its path)."""
    found = [(command, ctx)]
    if hasattr(command, "list_commands"):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                found += _commands(sub, typer.Context(sub, info_name=name, parent=ctx))
    return found


def _parameter_table(params: list[Any], ctx: Any, header: str) -> list[str]:
    rows = []
    for param in params:
        record = param.get_help_record(ctx)
        if record is None:  # hidden
            continue
        names, help_text = record
        match = _EXTRA.match(help_text)
        help_text, extra = (match["help"], match["extra"]) if match else (help_text, "")
        details = ", ".join(_detail(part.strip()) for part in extra.split(";") if part.strip())
        rows.append(f"| `{names}` | {_text(help_text)} | {details} |")
    if not rows:
        return []
    return [f"| {header} | Description | Default, range |", "| --- | --- | --- |", *rows, ""]


def _detail(part: str) -> str:
    """One item of a help record's brackets: ``default: X``, ``required`` or a range such as ``x>=1``."""
    if part.startswith("default: "):
        return f"default `{part.removeprefix('default: ')}`"
    return "**required**" if part == "required" else f"`{part}`"


def _examples(epilog: str | None) -> list[str]:
    if not epilog:
        return []
    match = _EXAMPLES.match(epilog.strip())
    if match is None:
        return [_paragraphs(epilog), ""]
    commands = [c.strip() for c in match["commands"].split(" · ") if c.strip()]
    return ["**Examples**", "", "```bash", *commands, "```", ""]


def command_markdown(command: Any, ctx: Any, level: int = 2) -> str:
    """One command's section: heading, usage, description, arguments, options and examples."""
    path = ctx.command_path
    usage = " ".join([path, *command.collect_usage_pieces(ctx)])
    lines = [f"{'#' * level} `{path}`", "", "```text", usage, "```", ""]
    if command.help:
        lines += [_paragraphs(command.help), ""]
    if hasattr(command, "list_commands"):
        subcommands = [
            (name, sub)
            for name in command.list_commands(ctx)
            if (sub := command.get_command(ctx, name)) is not None and not sub.hidden
        ]
        lines += ["| Command | Description |", "| --- | --- |"]
        lines += [
            f"| [`{name}`](#{_anchor(f'{path} {name}')}) | {_text(sub.get_short_help_str(200))} |"
            for name, sub in subcommands
        ]
        lines.append("")
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    options = [p for p in command.get_params(ctx) if p.param_type_name != "argument"]
    lines += _parameter_table(arguments, ctx, "Argument")
    lines += _parameter_table(options, ctx, "Option")
    lines += _examples(command.epilog)
    return "\n".join(lines)


def _anchor(path: str) -> str:
    """The toc extension's id of a heading ``path`` (lower case, words joined by ``-``)."""
    return re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", path).strip().lower())


def cli_markdown(app: Any | None = None) -> str:
    """The reference of every visible command of ``app`` (default: ``xrender.cli.app``), as markdown."""
    if app is None:
        from xrender.cli import app
    root = typer.main.get_command(app)
    ctx = typer.Context(root, info_name="xrender")
    return "\n".join(command_markdown(command, context) for command, context in _commands(root, ctx))


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Replace the page's `MARKER` with the generated reference (other pages pass through)."""
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"docs/{PAGE} must hold the marker {MARKER} where the command reference goes")
    return markdown.replace(MARKER, cli_markdown())
