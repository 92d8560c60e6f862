"""C-arm geometry files: a JSON object of `xrender.geometry.ConeBeam` fields.

What ``xrender register --geometry``, ``render --geometry`` and ``simulate --geometry`` read, and
what ``pose.json`` and a ``simulate --count`` dataset's JSON record under ``"geometry"``
(`dataclasses.asdict` of the `ConeBeam`).
"""

from __future__ import annotations

import json
from pathlib import Path

from xrender.geometry import ConeBeam
from xrender.io._paths import PathLike

__all__ = ["read_geometry"]


def read_geometry(path: PathLike) -> ConeBeam:
    """The `ConeBeam` of a JSON file of its fields (``sdd``, ``height``, ``width``, ``pixel_spacing``, …).

    A ``pose.json`` or dataset JSON holding the fields under ``"geometry"`` is read too.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, not an object of `ConeBeam`'s fields, or values `ConeBeam` refuses;
            the message names ``path``.

    Examples:
        >>> import json, tempfile
        >>> from dataclasses import asdict
        >>> from pathlib import Path
        >>> from xrender.geometry import get_preset
        >>> from xrender.io import read_geometry
        >>> carm = get_preset("prost").downsample(4)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = Path(folder) / "carm.json"
        ...     _ = path.write_text(json.dumps(asdict(carm)))
        ...     read_geometry(path) == carm
        True
    """
    path = Path(path)
    try:
        fields = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: expected a JSON object of ConeBeam fields ({error})") from None
    if isinstance(fields, dict) and isinstance(fields.get("geometry"), dict):
        fields = fields["geometry"]
    if not isinstance(fields, dict):
        raise ValueError(f"{path}: expected a JSON object of ConeBeam fields, got {type(fields).__name__}")
    try:
        return ConeBeam(**fields)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: not a C-arm geometry ({error})") from None
