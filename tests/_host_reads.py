"""`HostReads`: count the reads of tensor values on the host (see ``test_host_reads.py``).

A host read is anything that brings a tensor's values to Python — ``.item()``, ``bool(t)``,
``float(t)``, ``int(t)``, ``if (t < 0).any()``, ``.tolist()``, ``.numpy()``, ``torch.equal``, a
``nonzero`` (data-dependent shape): on a GPU each is a device sync and a ``torch.compile`` graph
break. `HostReads` counts them on the CPU, where the tests run, through the dispatcher ops behind
them (``aten._local_scalar_dense`` for every scalar read) plus the Python-level ``tolist`` and
``numpy``. The fused CPU backend hands its (CPU-only) tensors to its numba kernel as numpy views;
those are the kernel's inputs, not reads of a device, and are not counted.
"""

from __future__ import annotations

import sys
from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

#: Dispatcher ops that read values on the host (or sync for a data-dependent shape).
READ_OPS = {
    torch.ops.aten._local_scalar_dense.default,
    torch.ops.aten.equal.default,
    torch.ops.aten.is_nonzero.default,
    torch.ops.aten.nonzero.default,
}

#: The fused CPU backend's kernel boundary (numpy views of CPU tensors, see the module docstring).
KERNEL_FILE = "xrender/render/fused_cpu.py"


class HostReads(TorchDispatchMode):
    """Count host reads inside the ``with`` block; ``reads.sites`` says where they came from."""

    def __init__(self) -> None:
        super().__init__()
        self.sites: Counter[str] = Counter()

    @property
    def count(self) -> int:
        return sum(self.sites.values())

    def _record(self, kind: str, depth: int) -> None:
        frame = sys._getframe(depth)
        while frame is not None and "/torch/" in frame.f_code.co_filename:
            frame = frame.f_back
        where = "?" if frame is None else f"{frame.f_code.co_filename}:{frame.f_lineno}"
        self.sites[f"{kind} at {where}"] += 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in READ_OPS:
            self._record(str(func), 2)
        return func(*args, **(kwargs or {}))

    def __enter__(self) -> HostReads:
        self._tolist, self._numpy = torch.Tensor.tolist, torch.Tensor.numpy
        counter = self

        def tolist(tensor, *args, **kwargs):
            counter._record("tolist", 2)
            return counter._tolist(tensor, *args, **kwargs)

        def numpy(tensor, *args, **kwargs):
            if not sys._getframe(1).f_code.co_filename.endswith(KERNEL_FILE):
                counter._record("numpy", 2)
            return counter._numpy(tensor, *args, **kwargs)

        torch.Tensor.tolist, torch.Tensor.numpy = tolist, numpy
        return super().__enter__()

    def __exit__(self, *exc: object) -> None:
        torch.Tensor.tolist, torch.Tensor.numpy = self._tolist, self._numpy
        super().__exit__(*exc)
