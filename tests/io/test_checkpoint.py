"""Tagged state files: atomic writes, safe loads, one-line errors."""

from __future__ import annotations

import os

import pytest
import torch

from xrender.io import CheckpointError, SavedModule, load_state, save_state


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # would create the marker file if it were ever unpickled
        return (open, (self.marker, "w"))


def test_round_trip_and_no_staging_left(tmp_path):
    path = save_state(tmp_path / "a.pt", {"w": torch.arange(3.0), "n": 2}, file_format="test", version=1)
    state = load_state(path, file_format="test", version=1)
    assert torch.equal(state["w"], torch.arange(3.0))
    assert state["n"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt"]


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_state(tmp_path / "none.pt", file_format="test", version=1)


def test_corrupt_file_names_the_path(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"bad\.pt"):
        load_state(path, file_format="test", version=1)


def test_truncated_file(tmp_path):
    path = save_state(tmp_path / "t.pt", {"w": torch.zeros(1000)}, file_format="test", version=1)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match=r"t\.pt"):
        load_state(path, file_format="test", version=1)


def test_tampered_file_is_refused_and_runs_no_code(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pt"
    torch.save({"format": "test", "version": 1, "payload": _Exploit(str(marker))}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_state(path, file_format="test", version=1)
    assert not marker.exists()


def test_foreign_format_and_version(tmp_path):
    path = save_state(tmp_path / "x.pt", {}, file_format="other", version=1)
    with pytest.raises(CheckpointError, match="expected an 'test' file, got 'other'"):
        load_state(path, file_format="test", version=1)
    path = save_state(tmp_path / "y.pt", {}, file_format="test", version=2)
    with pytest.raises(CheckpointError, match="version 1, got 2"):
        load_state(path, file_format="test", version=1)
    plain = tmp_path / "plain.pt"
    torch.save(torch.zeros(2), plain)
    with pytest.raises(CheckpointError, match="Tensor"):
        load_state(plain, file_format="test", version=1)


def test_failed_write_leaves_the_old_file(tmp_path):
    path = save_state(tmp_path / "a.pt", {"n": 1}, file_format="test", version=1)
    with pytest.raises(Exception):  # noqa: B017 (pickling error type depends on the object)
        save_state(path, {"n": lambda: 0}, file_format="test", version=1)
    assert load_state(path, file_format="test", version=1)["n"] == 1
    assert sorted(os.listdir(tmp_path)) == ["a.pt"]


def test_saved_module_round_trip_and_errors(tmp_path):
    class Tiny(SavedModule):
        file_format = "xrender.test-tiny"
        description = "tiny test module"

        def __init__(self, width: int) -> None:
            super().__init__()
            self.config = {"width": width}
            self.linear = torch.nn.Linear(width, 1)

    module = Tiny(3)
    path = module.save(tmp_path / "tiny.pt", note="extra")
    loaded = Tiny.load(path)
    assert loaded.config == {"width": 3}
    for name, value in module.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value)
    with pytest.raises(CheckpointError, match=r"state: not a usable tiny test module \(TypeError"):
        Tiny.from_state({"config": {"depth": 2}, "weights": {}})
    bad = {"config": {"width": 4}, "weights": module.state_dict()}  # weights of another width
    save_state(tmp_path / "tiny.pt", bad, file_format="xrender.test-tiny", version=1)
    with pytest.raises(CheckpointError, match=r"tiny\.pt: not a usable tiny test module \(RuntimeError"):
        Tiny.load(tmp_path / "tiny.pt")
