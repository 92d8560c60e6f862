"""A griffe extension for the API reference: the repository's ``recipes/`` folder as ``xrender.recipes``.

pyproject's ``[tool.setuptools] package-dir`` installs ``recipes/`` as the subpackage
``xrender.recipes``; griffe reads packages from folders and cannot follow that mapping, so when
mkdocstrings has loaded ``xrender``, this loads ``recipes/`` and attaches it there.
"""

from __future__ import annotations

from typing import Any

from griffe import Extension, GriffeLoader, Module


class RecipesSubpackage(Extension):
    """Attach the top-level ``recipes`` folder to the ``xrender`` package as its ``recipes`` member."""

    def on_package(self, *, pkg: Module, loader: GriffeLoader, **kwargs: Any) -> None:
        if pkg.path != "xrender" or "recipes" in pkg.members:
            return
        recipes = loader.load("recipes", try_relative_path=False)
        del loader.modules_collection.members["recipes"]  # known only as xrender.recipes
        pkg.set_member("recipes", recipes)
