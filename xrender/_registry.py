"""One small registry type: named factories of one kind of object, built by name with options.

Presets, pose distributions, pose parameterizations and attenuation models are all looked up by
name; each keeps a :class:`Registry` instead of a string ``if``/``elif`` ladder, so adding an
entry is one ``register`` call and every lookup error reads the same.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Named factories that build objects of one type.

    Args:
        kind: what the entries are, for error messages (e.g. ``"C-arm preset"``).
        result_type: the type every factory must return (checked on :meth:`get`).
    """

    def __init__(self, kind: str, result_type: type[T]) -> None:
        self.kind = kind
        self.result_type = result_type
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str, factory: Callable[..., T], *, overwrite: bool = False) -> None:
        """Add ``factory`` under ``name``; ``get(name, **options)`` will call ``factory(**options)``.

        Raises:
            TypeError: ``name`` is not a string or ``factory`` is not callable.
            ValueError: empty name, or the name is taken and ``overwrite`` is false.
        """
        if not isinstance(name, str):
            raise TypeError(f"{self.kind} name: expected a str, got {type(name).__name__}")
        if not name:
            raise ValueError(f"{self.kind} name: expected a non-empty string, got ''")
        if not callable(factory):
            raise TypeError(f"{self.kind} factory: expected a callable, got {type(factory).__name__}")
        if name in self._factories and not overwrite:
            raise ValueError(f"{self.kind} {name!r} is already registered; pass overwrite=True to replace it")
        self._factories[name] = factory

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def get(self, name: str, /, **options: Any) -> T:
        """Build the entry ``name`` with keyword ``options``.

        Raises:
            ValueError: unknown name; the message lists the registered ones.
            TypeError: an option the entry does not accept (the message lists the accepted ones),
                or a factory that returned the wrong type.
        """
        factory = self._factories.get(name) if isinstance(name, str) else None
        if factory is None:
            raise ValueError(f"unknown {self.kind} {name!r}; available: {', '.join(self.names())}")
        signature = inspect.signature(factory)
        try:
            signature.bind(**options)
        except TypeError:
            accepted = list(signature.parameters)
            raise TypeError(
                f"{self.kind} {name!r}: unknown option(s) {sorted(options)}; accepted options: {accepted or 'none'}"
            ) from None
        result = factory(**options)
        if not isinstance(result, self.result_type):
            raise TypeError(
                f"{self.kind} {name!r}: factory returned {type(result).__name__}, not {self.result_type.__name__}"
            )
        return result
