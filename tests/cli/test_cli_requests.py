"""The options of ``xrender register``, ``evaluate`` and ``train`` are the fields of their request dataclasses.

Each command hands its options to its request by name (`xrender.recipes._config.from_options`):
a parameter without a field, a field without a parameter, or a command-line default other than
the request's fails here. Adding an option is adding the field and the parameter of its name.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from xrender import cli
from xrender.image import XRayPreprocessing
from xrender.recipes._config import from_options, option_group, option_names
from xrender.recipes.registration.command import EvaluationRequest, RegistrationRequest
from xrender.recipes.registration.evaluation import EvaluationConfig
from xrender.recipes.training.command import TrainingRequest


def _training_request(options):
    return from_options(TrainingRequest, options)


#: (command, how it builds its request from its options, the request, the fields it needs).
COMMANDS = {
    "register": (
        cli.register_command,
        cli._registration_request,
        RegistrationRequest,
        {"ct": Path("ct.nii.gz"), "xray": Path("xray.png")},
    ),
    "evaluate": (cli.evaluate_command, cli._evaluation_request, EvaluationRequest, {"phantom": True}),
    "train": (cli.train_command, _training_request, TrainingRequest, {"phantom": True}),
}


@pytest.mark.parametrize("name", COMMANDS)
def test_command_parameters_are_the_request_fields(name):
    command, _, request_type, _ = COMMANDS[name]
    names = option_names(request_type)
    assert len(set(names)) == len(names), "a group's field has the name of another option"
    parameters = set(inspect.signature(command).parameters)
    assert not parameters - set(names), f"xrender {name}: options without a {request_type.__name__} field"
    assert not set(names) - parameters, f"xrender {name}: {request_type.__name__} fields without an option"


@pytest.mark.parametrize("name", COMMANDS)
def test_command_defaults_are_the_request_defaults(name):
    command, build, request_type, required = COMMANDS[name]
    parameters = inspect.signature(command).parameters.items()
    defaults = {key: p.default for key, p in parameters if p.default is not inspect.Parameter.empty}
    assert build(defaults | required) == request_type(**required)


@dataclass(frozen=True)
class _Settings:
    size: int = 1
    hidden: str = "h"


@dataclass(frozen=True)
class _Request:
    name: str = "n"
    settings: _Settings = field(default_factory=_Settings, metadata=option_group(besides=("hidden",)))


def test_from_options_fills_fields_and_groups_by_name():
    assert option_names(_Request) == ["name", "size"]
    assert from_options(_Request, {"name": "a", "size": 3}) == _Request("a", _Settings(size=3))
    assert from_options(_Request, {"name": None, "size": None}) == _Request()  # left out: the default
    with pytest.raises(TypeError, match="no field for the option"):
        from_options(_Request, {"hidden": "x"})


def test_registration_request_checks_init():
    RegistrationRequest(Path("ct"), Path("x"), init=Path("pose.json"))
    with pytest.raises(ValueError, match=r"init \(--init\): expected six finite numbers"):
        RegistrationRequest(Path("ct"), Path("x"), init=(0.0, 1.0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="--init"):
        RegistrationRequest(Path("ct"), Path("x"), init=(0.0,) * 5 + (float("nan"),))


def test_evaluation_request_sets_the_trials_and_checks_the_methods():
    stratified = EvaluationConfig(stratify=(0.0, 10.0, 20.0))
    assert EvaluationRequest(phantom=True, config=stratified, per_bin=3).config.trials == 6
    assert EvaluationRequest(phantom=True, trials=4).config.trials == 4
    assert EvaluationRequest(phantom=True, config=EvaluationConfig(trials=7)).config.trials == 7
    with pytest.raises(ValueError, match="--methods: expected at least one method"):
        EvaluationRequest(phantom=True, methods=[])
    with pytest.raises(ValueError, match="a CT path, --phantom or --deepfluoro"):
        EvaluationRequest(ct=Path("ct.nii.gz"), phantom=True)


def test_training_request_pairs_masks_with_cts():
    TrainingRequest(ct=[Path("a"), Path("b")], mask=[Path("ma"), Path("mb")])
    with pytest.raises(ValueError, match="expected one --mask per CT, got 1 for 2"):
        TrainingRequest(ct=[Path("a"), Path("b")], mask=[Path("ma")])
    with pytest.raises(ValueError, match="not both or neither"):
        TrainingRequest(ct=[Path("a")], phantom=True)


def test_preprocessing_options_are_xray_preprocessing():
    request = cli._registration_request(
        {"ct": Path("ct"), "xray": Path("x"), "crop": "1,2,3,4", "init": "0,0,0,0,0,0", "pixel_spacing": None}
        | {"angles": None, "negative_log": True, "binning": 2}
    )
    assert request.preprocessing == XRayPreprocessing(crop=(1, 2, 3, 4), negative_log=True, binning=2)
