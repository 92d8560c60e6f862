"""Input validation shared by every public function.

Each check raises a `ValueError` (or `TypeError`) whose message states what was
expected and what arrived, so a user reads the fix in the error. Validation never uses ``assert``
(stripped under ``python -O``).

**Where values are checked.** `check_shape` and `check_tensor` read only ``.shape`` and types: they
are free and may run anywhere. `check_finite` reads one boolean from the tensor (a device sync, a
``torch.compile`` graph break), so it runs at entry points only — readers, public constructors, the
start of a registration, the command line, and `xrender.render.render`'s pose and pixels — never on
internal calls (geometry, similarity and registration internals trust their callers).
`check_positive` on numbers (not tensors) reads nothing from a device.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["check_shape", "check_finite", "check_positive", "check_tensor"]


def check_tensor(x: object, name: str) -> Tensor:
    """Return ``x`` if it is a tensor, else raise a `TypeError` naming it."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    return x


def check_shape(x: Tensor, pattern: str, name: str) -> Tensor:
    """Check ``x.shape`` against a pattern such as ``"* 4 4"`` or ``"C D H W"``.

    Tokens are separated by spaces: an integer must match exactly, a name matches any size,
    and a leading ``*`` matches any number (including zero) of leading batch dimensions.

    Args:
        x: the tensor to check.
        pattern: the expected shape.
        name: the argument's name, used in the error message.

    Returns:
        ``x`` unchanged.

    Raises:
        TypeError: ``x`` is not a tensor.
        ValueError: the shape does not match; the message shows both.
    """
    check_tensor(x, name)
    tokens = pattern.split()
    batched = bool(tokens) and tokens[0] == "*"
    fixed = tokens[1:] if batched else tokens
    shape = tuple(x.shape)
    ok = len(shape) >= len(fixed) if batched else len(shape) == len(fixed)
    if ok:
        tail = shape[len(shape) - len(fixed) :] if fixed else ()
        ok = all(not t.isdigit() or int(t) == s for t, s in zip(fixed, tail, strict=True))
    if not ok:
        raise ValueError(f"{name}: expected shape ({', '.join(tokens)}), got {shape}")
    return x


def check_finite(x: Tensor, name: str) -> Tensor:
    """Raise a `ValueError` if ``x`` holds a NaN or an infinity."""
    if not bool(torch.isfinite(x.detach()).all()):
        raise ValueError(f"{name}: expected finite values, got NaN or inf")
    return x


def check_positive(values: float | Sequence[float] | Tensor, name: str) -> None:
    """Raise a `ValueError` unless every value is finite and strictly positive.

    Numbers and sequences of numbers are checked on the host; a tensor costs one boolean read.
    """
    if isinstance(values, Tensor):
        t = values.detach().to(torch.float64)
        if t.numel() > 0 and bool((torch.isfinite(t) & (t > 0)).all()):
            return
        t = t.cpu().numpy()
    else:
        t = np.asarray(values, dtype=np.float64)
        if t.size > 0 and bool((np.isfinite(t) & (t > 0)).all()):
            return
    shown = t.tolist() if t.size < 16 else f"a tensor of shape {tuple(t.shape)}"
    raise ValueError(f"{name}: expected finite values > 0, got {shown}")
