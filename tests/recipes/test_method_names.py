"""The light grammar of method names (`xrender.recipes.method_names`) names exactly the registered stages."""

from xrender.recipes.method_names import PROST_OPTIMIZER_NAMES, STAGE_FORMS, method_grammar
from xrender.recipes.registration.methods import PROST_OPTIMIZERS, STAGES, build_method


def test_stage_forms_name_exactly_the_registered_stages():
    assert set(STAGE_FORMS) == set(STAGES)
    for name, form in STAGE_FORMS.items():
        assert form.startswith(name)


def test_prost_optimizer_names_are_the_registered_ones():
    assert set(PROST_OPTIMIZER_NAMES) == set(PROST_OPTIMIZERS)


def test_grammar_lists_every_form():
    grammar = method_grammar()
    assert all(form in grammar for form in STAGE_FORMS.values())
    assert "'+'" in grammar


def test_forms_without_argument_build():
    for name, form in STAGE_FORMS.items():
        if "[" not in form and name != "regression":  # regression needs a trained regressor
            assert build_method(form)
