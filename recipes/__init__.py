"""Recipes: the ProST paper's training and registration assembled from xrender's modules.

The repository's ``recipes/`` folder, installed as ``xrender.recipes``. The recipes import the
library and their shared modules (`xrender.recipes._config`, `xrender.recipes.distributed`);
`training`, `registration` and `regression` never import each other, and the library never
imports the recipes (docs/architecture.md).
"""
