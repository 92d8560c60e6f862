"""Every public class and function of geometry, render and similarity has a runnable example, and it runs.

The public API is what the reference pages document: the modules of ``xrender.geometry``,
``xrender.render`` and ``xrender.similarity`` named on a ``:::`` line of ``docs/reference/*.md``,
and the three packages themselves; each contributes the classes and functions named in its
``__all__``. Each must have an ``Examples:`` section in doctest form (``>>>`` lines and the output
they print). Every doctest of those modules runs here in a fresh namespace, so an example imports
what it uses and can be copied as it is.

Run this file as a script (``PYTHONPATH=. python tests/test_docstring_examples.py``) to list the
public names that have no example yet.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import io
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from xrender._registry import Registry

PACKAGES = ("xrender.geometry", "xrender.render", "xrender.similarity")
REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "reference"
DIRECTIVE = re.compile(r"^::: (xrender[\w.]*)\s*$", re.MULTILINE)
FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS

# Public names whose examples are still to come, each with the reason. The test below fails if one
# of them gains an example (strike it from here then), so the list can only shrink.
AWAITING: dict[str, str] = {}


def _in_packages(name: str) -> bool:
    return any(name == package or name.startswith(package + ".") for package in PACKAGES)


def documented_modules() -> list[ModuleType]:
    """The three packages and their modules that a reference page documents."""
    named = {name for page in REFERENCE.glob("*.md") for name in DIRECTIVE.findall(page.read_text(encoding="utf-8"))}
    return [importlib.import_module(name) for name in sorted(set(PACKAGES) | {n for n in named if _in_packages(n)})]


def public_objects() -> dict[str, object]:
    """``module.qualname`` → each class or function in the ``__all__`` of a documented module."""
    found: dict[str, object] = {}
    for module in documented_modules():
        for name in module.__all__:
            obj = getattr(module, name)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and _in_packages(obj.__module__):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return dict(sorted(found.items()))


def has_example(obj: object) -> bool:
    """The object's own docstring has an ``Examples:`` section with at least one ``>>>`` line."""
    doc = inspect.cleandoc(obj.__doc__ or "")
    section = re.search(r"^Examples:\n((?:[ \t]+.*\n?|\n)+)", doc, re.MULTILINE)
    return section is not None and ">>> " in section[1]


def missing_examples() -> list[str]:
    return [name for name, obj in public_objects().items() if not has_example(obj)]


def _doctests() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = {t.name: t for m in documented_modules() for t in finder.find(m, m.__name__, globs={}) if t.examples}
    return [tests[name] for name in sorted(tests)]


DOCTESTS = _doctests()


def test_public_api_is_found():
    names = public_objects()
    assert "xrender.geometry.camera.ConeBeam" in names
    assert "xrender.render.drr.render" in names
    assert "xrender.similarity.ncc.NCCSimilarity" in names
    assert "xrender.similarity.prost.similarity.ProSTSimilarity" in names
    assert len(names) > 100


def test_example_sections_are_recognised():
    def with_example():
        """Do a thing.

        Examples:
            >>> 1 + 1
            2
        """

    def without_example():
        """Do a thing.

        Examples:
            ``1 + 1``.
        """

    assert has_example(with_example)
    assert not has_example(without_example)
    assert not has_example(len.__call__)


def test_every_public_class_and_function_has_an_example():
    missing = missing_examples()
    assert sorted(set(missing) - set(AWAITING)) == [], "add an Examples: section (doctest form) to these"
    assert sorted(set(AWAITING) - set(missing)) == [], "these have examples now: strike them from AWAITING"


@pytest.fixture
def registries_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Names an example registers (`register_preset`, …) are gone after it."""
    for module in [m for name, m in sorted(sys.modules.items()) if name.startswith("xrender.")]:
        for value in vars(module).values():
            if isinstance(value, Registry):
                monkeypatch.setattr(value, "_factories", dict(value._factories))


@pytest.mark.usefixtures("registries_restored")
@pytest.mark.parametrize("test", DOCTESTS, ids=lambda t: t.name)
def test_docstring_example_runs(test: doctest.DocTest):
    report = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    result = runner.run(
        doctest.DocTest(test.examples, {}, test.name, test.filename, test.lineno, test.docstring), out=report.write
    )
    assert result.failed == 0, report.getvalue()


if __name__ == "__main__":
    missing = missing_examples()
    print(f"{len(public_objects()) - len(missing)} of {len(public_objects())} public names have examples; missing:")
    print("\n".join(missing))
