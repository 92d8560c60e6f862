"""What the recipes' settings share: `ConfigRecord` (validated copies and plain data of frozen config
dataclasses) and `parse_overrides` (the command line's ``--set key=value`` strings)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, TypeVar

__all__ = ["ConfigRecord", "parse_overrides"]

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
