"""The fused kernels' on-disk cache: enabled on every compiled function, loaded by a second process, and
never a reason for a render to fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numba
import pytest
from numba.core import caching

from xrender.render import fused_cpu
from xrender.render.fused_cpu import _NO_CACHE_MESSAGE, _DiskCache, _jit

_COMPILED = {name: f for name, f in vars(fused_cpu).items() if isinstance(f, numba.core.dispatcher.Dispatcher)}

# A one-channel march in a fresh process; prints the kernel's cache hits and misses, and whether
# numba's NumPy support (what refreshing its CPU target imports) was loaded.
_RENDER = """
import json, sys, torch
from xrender.render.fused_cpu import _forward_c1, fused_march
data = torch.rand(1, 4, 5, 6, dtype=torch.float64)
origins = torch.tensor([[-1.0, 2.0, 2.0]], dtype=torch.float64)
directions = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
fused_march(data, origins, directions, torch.zeros(1, dtype=torch.float64), torch.full((1,), 8.0, dtype=torch.float64),
            torch.tensor([8]), 8)
stats = _forward_c1.stats
hits, misses = sum(stats.cache_hits.values()), sum(stats.cache_misses.values())
print(json.dumps([hits, misses, "numba.np.arraymath" in sys.modules]))
"""


def test_every_compiled_function_caches_on_disk():
    assert len(_COMPILED) >= 15  # the kernels and their per-sample helpers
    for name, dispatcher in _COMPILED.items():
        assert isinstance(dispatcher._cache, _DiskCache), name


@pytest.mark.slow  # two fresh interpreters load torch and the kernels: ~7 s
def test_a_second_process_loads_the_kernels_from_the_cache(tmp_path: Path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    root = Path(fused_cpu.__file__).parents[2]

    def run() -> list[int]:
        done = subprocess.run([sys.executable, "-c", _RENDER], env=env, cwd=root, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    assert run() == [0, 1, True]  # compiled (the compiler refreshes the target), then written to NUMBA_CACHE_DIR
    assert any(tmp_path.rglob("fused_cpu._forward_c1-*.nbc"))
    assert run() == [1, 0, False]  # loaded, not compiled, and without numba's NumPy support (~0.45 s)


def _add_one(x):  # pragma: no cover - compiled
    return x + 1


def test_no_writable_cache_folder_compiles_with_a_warning(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(caching.CacheImpl, "_locator_classes", [])
    monkeypatch.delenv("NUMBA_CACHE_LOCATOR_CLASSES", raising=False)
    with pytest.warns(RuntimeWarning, match="cannot cache the compiled kernels"):
        add_one = _jit()(_add_one)
    assert add_one(41) == 42
    assert "NUMBA_CACHE_DIR" in _NO_CACHE_MESSAGE


def test_unreadable_or_unwritable_cache_files_compile_with_a_warning(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path))
    add_one = _jit()(lambda x: x + 1)

    def fail(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(add_one._cache._cache_file, "load", fail)
    monkeypatch.setattr(add_one._cache._cache_file, "save", fail)
    with pytest.warns(RuntimeWarning, match="numba cache not (read|written)") as caught:
        assert add_one(1.5) == 2.5
    assert {str(w.message).split(" (")[0] for w in caught} == {
        "fused-cpu: numba cache not read",
        "fused-cpu: numba cache not written",
    }
