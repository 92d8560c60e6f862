"""Saving and loading tagged PyTorch state files: atomically written, safely read.

Every file xrender writes with `save_state` is a dict with a ``"format"`` tag and a
``"version"``. `load_state` reads it with ``torch.load(weights_only=True)`` — PyTorch's
restricted unpickler, which builds tensors, numbers, strings and containers only and never runs
code from the file — then checks the tag. A missing, truncated, tampered or foreign file gets one
`CheckpointError` line naming the path and what was wrong, never a traceback from deep inside
pickle or a half-loaded model.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from xrender.io._paths import PathLike
from xrender.io.atomic import atomic_output

__all__ = ["CheckpointError", "SavedModule", "load_state", "save_state"]


class CheckpointError(ValueError):
    """A state file that cannot be used: missing, unreadable, unsafe, or of another format or version."""


def save_state(path: PathLike, state: dict[str, Any], *, file_format: str, version: int) -> Path:
    """Write ``state`` tagged with ``file_format`` and ``version`` to ``path``, atomically (temp file + rename).

    Only plain data belongs in ``state`` (tensors, numbers, strings, lists, tuples, dicts), so that
    `load_state` can read it back with ``weights_only=True``.

    Returns:
        ``path`` as a `Path`.
    """
    path = Path(path)
    with atomic_output(path) as staging:
        torch.save({**state, "format": file_format, "version": version}, staging)
    return path


_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation")


def _reason(error: Exception) -> str:
    """The informative line of PyTorch's weights-only refusal (e.g. "unsupported GLOBAL posix.system")."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(_BOILERPLATE)]
    return useful[-1] if useful else "unsupported content"


def load_state(
    path: PathLike, *, file_format: str, version: int, map_location: str | torch.device | None = "cpu"
) -> dict[str, Any]:
    """Read a file written by `save_state` and check its tag.

    Args:
        path: the file.
        file_format: the expected ``"format"`` tag.
        version: the expected version.
        map_location: where tensors are loaded (``torch.load``'s argument).

    Returns:
        The state dict (with its ``"format"`` and ``"version"`` entries).

    Raises:
        CheckpointError: a missing or unreadable file, content the safe unpickler refuses (code,
            arbitrary objects), or another format or version. The message names the path.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(f"{path}: refused to load, not a file of plain weights ({_reason(error)})") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable PyTorch file ({type(error).__name__}: {error})") from None
    found = state.get("format") if isinstance(state, dict) else None
    if found != file_format:
        raise CheckpointError(f"{path}: expected an {file_format!r} file, got {found or type(state).__name__!r}")
    if state.get("version") != version:
        raise CheckpointError(f"{path}: expected {file_format!r} version {version}, got {state.get('version')!r}")
    return state


_Saved = TypeVar("_Saved", bound="SavedModule")


class SavedModule(nn.Module):
    """An `nn.Module` saved as its constructor options (``self.config``) plus its weights.

    Subclasses set ``file_format`` (the tag), ``description`` (for messages) and keep the keyword
    arguments that rebuild them in ``self.config``; override `_from_config` when some arguments
    are not plain config (e.g. buffers that travel with the weights).
    """

    file_format: ClassVar[str]
    file_version: ClassVar[int] = 1
    description: ClassVar[str]
    config: dict[str, Any]

    def to_state(self) -> dict[str, Any]:
        """The module as plain data: ``{"config": …, "weights": state_dict}`` (see `from_state`)."""
        return {"config": dict(self.config), "weights": self.state_dict()}

    @classmethod
    def _from_config(cls: type[_Saved], config: dict[str, Any], weights: dict[str, Any]) -> _Saved:
        """Build an untrained module from its saved config (the weights are loaded afterwards)."""
        return cls(**config)

    @classmethod
    def from_state(cls: type[_Saved], state: dict[str, Any], origin: str = "state") -> _Saved:
        """Rebuild the module from `to_state`'s output.

        Raises:
            CheckpointError: the config or the weights do not describe such a module; the message
                starts with ``origin`` (e.g. the file's path).
        """
        try:
            module = cls._from_config(dict(state["config"]), state["weights"])
            module.load_state_dict(state["weights"])
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            reason = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}"
            raise CheckpointError(f"{origin}: not a usable {cls.description} ({reason})") from None
        return module

    def save(self, path: PathLike, **extra: Any) -> Path:
        """Write config + weights (and ``extra`` plain data such as a training summary) atomically."""
        return save_state(path, {**self.to_state(), **extra}, file_format=self.file_format, version=self.file_version)

    @classmethod
    def load(cls: type[_Saved], path: PathLike, map_location: str | torch.device | None = "cpu") -> _Saved:
        """Read a file written by `save` (safely: ``torch.load(weights_only=True)``).

        Raises:
            CheckpointError: missing, corrupt, unsafe or foreign file, or weights that do not fit;
                the message names the path.
        """
        state = load_state(path, file_format=cls.file_format, version=cls.file_version, map_location=map_location)
        return cls.from_state(state, origin=str(path))
