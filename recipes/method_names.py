"""The grammar of registration method names, light to import: ``xrender --help`` shows it without loading torch.

A method name is stage names joined by ``+``, run left to right (``"prost+cmaes"``); a stage may
take an argument after ``:`` (``"nevergrad:PSO"``, ``"prost:line-search"``).
`xrender.recipes.registration.methods` builds the stages: its `STAGES` registry has exactly the
names of `STAGE_FORMS` and its `PROST_OPTIMIZERS` those of `PROST_OPTIMIZER_NAMES`
(``tests/recipes/test_method_names.py`` checks both).
"""

__all__ = ["PROST_OPTIMIZER_NAMES", "STAGE_FORMS", "MissingModelError", "method_grammar"]

#: How a ``prost`` stage may use the learned similarity (``prost:<name>``; ``descent`` when omitted).
PROST_OPTIMIZER_NAMES = ("descent", "line-search", "cmaes", "multistart")

#: Each stage's name and the form it takes in a method name.
STAGE_FORMS: dict[str, str] = {
    "cmaes": "cmaes",
    "ncc-adam": "ncc-adam",
    "nevergrad": "nevergrad[:<name>]",
    "prost": f"prost[:{'|'.join(PROST_OPTIMIZER_NAMES)}]",
    "regression": "regression",
}


class MissingModelError(ValueError):
    """A stage whose trained model is missing from the `MethodContext` (a `ValueError`).

    Attributes:
        stage: the stage's name (``"prost"``, ``"regression"``).
        model: what it needs, in words (``"ProST model"``).
        field: the `MethodContext` field that holds the model (``"prost"``, ``"regressor"``).
    """

    def __init__(self, stage: str, model: str, field: str) -> None:
        super().__init__(f"the {stage!r} stage needs a trained {model} (MethodContext.{field})")
        self.stage = stage
        self.model = model
        self.field = field


def method_grammar() -> str:
    """One line for a command's help: the stages a method name chains with ``+``."""
    return f"stages {', '.join(STAGE_FORMS.values())}, chained with '+' and run left to right"
