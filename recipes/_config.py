"""What the recipes' settings share: `ConfigRecord` (validated copies and plain data of frozen config
dataclasses), `parse_overrides` (the command line's ``--set key=value`` strings), and how a
command's options become its request dataclass (`option_group`, `option_names`, `from_options`).

A command of ``xrender`` (`xrender.cli`) hands its options to a request dataclass (e.g.
`xrender.recipes.registration.command.RegistrationRequest`): each option fills the field of its
name, and a field declared with `option_group` (a settings dataclass such as
`xrender.image.XRayPreprocessing`) is built from the options named after *its* fields.
``tests/cli/test_cli_requests.py`` checks that every command's options are exactly the names
`option_names` lists and that its defaults are the request's, so adding an option means adding
the field and the command's parameter of the same name, and nothing else.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, TypeVar

__all__ = ["ConfigRecord", "from_options", "option_group", "option_names", "parse_overrides"]

#: The field metadata key of `option_group`: the names of the group's fields that are not options.
_GROUP = "option_group"

_Request = TypeVar("_Request")

_Config = TypeVar("_Config", bound="ConfigRecord")


class ConfigRecord:
    """Mixin for frozen dataclasses of settings: `replace`, `from_dict` and `to_dict`.

    Lists become tuples on the way in (JSON, TOML and checkpoints store tuples as lists), and
    unknown names are rejected with the valid ones listed.
    """

    #: How an entry is named in error messages (default: "<class> field").
    field_kind: ClassVar[str | None] = None

    def replace(self: _Config, **changes: Any) -> _Config:
        """A copy with ``changes`` (validated by the dataclass, unknown names rejected)."""
        names = [f.name for f in dataclasses.fields(self)]  # type: ignore[arg-type]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            kind = self.field_kind or f"{type(self).__name__} field"
            raise ValueError(f"unknown {kind}(s) {', '.join(unknown)}; valid: {', '.join(names)}")
        changes = {k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()}
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    @classmethod
    def from_dict(cls: type[_Config], values: Mapping[str, Any]) -> _Config:
        """The config `to_dict` wrote (missing fields take their defaults; unknown ones are rejected)."""
        return cls().replace(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for checkpoints and JSON)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["lr_max=1e-3", "head=cross-attention", "minutes=null"]`` → a dict of values.

    Values are read as JSON (numbers, ``true``/``false``, ``null``, lists), else kept as strings.

    Raises:
        ValueError: an item without ``=``.
    """
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r}: expected key=value")
        try:
            parsed[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            parsed[key.strip()] = text
    return parsed


def option_group(*, besides: Iterable[str] = ()) -> dict[str, frozenset[str]]:
    """The metadata of a request field holding settings whose fields (all but ``besides``) are options.

    The field's ``default_factory`` is the settings class:
    ``config: EvaluationConfig = field(default_factory=EvaluationConfig, metadata=option_group())``.
    """
    return {_GROUP: frozenset(besides)}


def _group(field: dataclasses.Field) -> tuple[type, frozenset[str]] | None:
    """The settings class and the names that are not options of an `option_group` field (else ``None``)."""
    if _GROUP not in field.metadata:
        return None
    return field.default_factory, field.metadata[_GROUP]  # type: ignore[return-value]


def option_names(request_type: type) -> list[str]:
    """The options a command for ``request_type`` takes: its fields' names, a group's fields' in its place."""
    names = []
    for field in dataclasses.fields(request_type):
        group = _group(field)
        if group is None:
            names.append(field.name)
        else:
            names += [f.name for f in dataclasses.fields(group[0]) if f.name not in group[1]]
    return names


def from_options(request_type: type[_Request], options: Mapping[str, Any]) -> _Request:
    """The request of a command's options: each field from the option of its name, a group from its fields'.

    An option that is ``None`` (left out) leaves its field at the default. The request's own
    validation (``__post_init__``) runs as it is built.

    Raises:
        TypeError: options that are not the names `option_names` lists (a programming error).
        ValueError: what the request or its settings raise for bad values.
    """
    unknown = sorted(set(options) - set(option_names(request_type)))
    if unknown:
        raise TypeError(f"{request_type.__name__}: no field for the option(s) {', '.join(unknown)}")

    def given(names: Iterable[str]) -> dict[str, Any]:
        return {name: options[name] for name in names if options.get(name) is not None}

    values = {}
    for field in dataclasses.fields(request_type):  # type: ignore[arg-type]
        group = _group(field)
        if group is None:
            values |= given([field.name])
        else:
            settings, besides = group
            values[field.name] = settings(
                **given(f.name for f in dataclasses.fields(settings) if f.name not in besides)
            )
    return request_type(**values)
