"""The shared Registry: lookup, options, errors."""

import pytest

from xrender._registry import Registry


def _make(scale: float = 1.0) -> float:
    return 2.0 * scale


def test_register_get_and_names():
    registry = Registry("widget", float)
    registry.register("b", _make)
    registry.register("a", lambda: 1.0)
    assert registry.names() == ["a", "b"]
    assert "a" in registry
    assert "c" not in registry
    assert registry.get("b", scale=3.0) == 6.0


def test_registry_errors_say_what_was_expected():
    registry = Registry("widget", float)
    registry.register("b", _make)
    with pytest.raises(ValueError, match="unknown widget 'x'; available: b"):
        registry.get("x")
    with pytest.raises(TypeError, match=r"widget 'b': unknown option\(s\) \['size'\]; accepted options: \['scale'\]"):
        registry.get("b", size=2)
    with pytest.raises(ValueError, match="widget 'b' is already registered; pass overwrite=True"):
        registry.register("b", _make)
    registry.register("b", lambda: 5.0, overwrite=True)
    assert registry.get("b") == 5.0
    registry.register("bad", lambda: "text")
    with pytest.raises(TypeError, match="widget 'bad': factory returned str, not float"):
        registry.get("bad")
    with pytest.raises(TypeError, match="widget factory: expected a callable, got int"):
        registry.register("c", 3)
    with pytest.raises(ValueError, match="widget name: expected a non-empty string"):
        registry.register("", _make)
    with pytest.raises(TypeError, match="widget name: expected a str, got int"):
        registry.register(1, _make)
