"""The command line's own help: ``--version``, an example under every command, the method grammar."""

import subprocess
import sys
from importlib.metadata import version

import pytest
import typer
from typer.testing import CliRunner

from xrender.cli import app
from xrender.recipes.method_names import STAGE_FORMS

runner = CliRunner()


def _commands(group, prefix: tuple[str, ...] = ()) -> dict:
    """Every leaf command of a group, by its path of names (``("benchmark", "render")``)."""
    found = {}
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group
            found |= _commands(command, (*prefix, name))
        elif not command.hidden:
            found[(*prefix, name)] = command
    return found


COMMANDS = _commands(typer.main.get_command(app))


def test_version_prints_the_distribution_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"xrender {version('xrender')}"


def test_every_command_is_listed():
    assert {("render",), ("evaluate",), ("register",), ("train",), ("benchmark", "render")} <= set(COMMANDS)


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_every_command_shows_an_example(path):
    command = COMMANDS[path]
    assert command.epilog, f"xrender {' '.join(path)} has no example"
    assert command.epilog.startswith("Example")
    assert f"xrender {' '.join(path)} " in command.epilog
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"xrender {' '.join(path)} " in result.output


def test_every_group_describes_itself():
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert "Benchmarks." not in result.output
    assert "speed, accuracy" in result.output


@pytest.mark.parametrize(("command", "option"), [("evaluate", "methods"), ("register", "method")])
def test_method_help_lists_every_registered_stage(command, option):
    from xrender.recipes.registration.methods import STAGES

    (param,) = [p for p in COMMANDS[(command,)].params if p.name == option]
    for stage in STAGES:
        assert STAGE_FORMS[stage] in param.help


def test_help_loads_no_registration_recipe():
    code = "import sys, xrender.cli; print(sorted(m for m in sys.modules if m.startswith('xrender.recipes.')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "['xrender.recipes.method_names']"
