"""Landmark files: the files 3D Slicer and spreadsheets keep named 3-D points in, read into `Landmarks`.

Formats, chosen by suffix:

* ``.fcsv``: Slicer's Markups fiducial CSV. Header lines start with ``#``; ``# CoordinateSystem =``
  gives the frame (``LPS`` or ``RAS``; the legacy codes ``0`` = RAS and ``1`` = LPS), and
  ``# columns =`` the column names (default
  ``id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID``). The name is ``label``.
  Without a ``CoordinateSystem`` line the file is taken as RAS, Slicer's convention before 4.11.
* ``.mrk.json``: Slicer's Markups JSON, ``markups[*].controlPoints[*]`` with ``label`` and
  ``position``, in each markup's ``coordinateSystem`` (``LPS`` when absent, as in the schema).
* ``.csv``: a plain table with the columns ``name,x,y,z`` (any order, more columns allowed),
  in the frame given by ``read_landmarks(frame=...)``, LPS by default.

RAS and LPS differ by the sign of x and y (`xrender.landmarks.ras_to_lps`); every `Landmarks`
holds LPS points, the frame of `Volume`'s affine.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

import torch
from torch import Tensor

from xrender.io._paths import PathLike, match_suffix
from xrender.io.atomic import atomic_output
from xrender.landmarks import Landmarks, ras_to_lps

__all__ = ["read_landmarks", "write_landmarks"]

Parsed = tuple[list[str], Tensor]

_FRAMES = ("LPS", "RAS")
_FCSV_LEGACY_FRAMES = MappingProxyType({"0": "RAS", "1": "LPS"})
_FCSV_COLUMNS = "id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID"
_MARKUPS_SCHEMA = (
    "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/"
    "markups-schema-v1.0.3.json#"
)


def _frame(value: str, path: Path, legacy: Mapping[str, str] = MappingProxyType({})) -> str:
    """Normalise a coordinate-system name to ``"LPS"`` or ``"RAS"``, else raise naming ``path``."""
    name = legacy.get(str(value).strip(), str(value).strip().upper())
    if name not in _FRAMES:
        raise ValueError(f"{path}: unknown coordinate system {value!r}; expected one of {list(_FRAMES)}")
    return name


def _resolve(path: Path, declared: str | None, frame: str | None, default: str) -> str:
    """The frame to read in: the file's own, else the caller's, else the format's default."""
    if declared is not None and frame is not None and declared != frame:
        raise ValueError(f"{path}: the file declares coordinate system {declared}, but frame={frame!r} was passed")
    return declared or frame or default


def _to_lps(points: Tensor, frame: str) -> Tensor:
    return ras_to_lps(points) if frame == "RAS" else points


def _table(path: Path, lines: list[tuple[int, str]], columns: list[str], name_column: str) -> Parsed:
    """Names and ``(N, 3)`` float64 points from CSV ``lines`` (line number, text) with ``columns``."""
    index = {c.strip().lower(): n for n, c in enumerate(columns)}
    needed = [name_column, "x", "y", "z"]
    if not all(c in index for c in needed):
        raise ValueError(f"{path}: expected columns {needed}, got {columns}")
    names, xyz = [], []
    for (number, text), fields in zip(lines, csv.reader(text for _, text in lines)):
        try:
            names.append(fields[index[name_column]].strip())
            xyz.append([float(fields[index[c]]) for c in "xyz"])
        except (IndexError, ValueError):
            raise ValueError(f"{path}: line {number}: expected a name and numeric x, y, z, got {text!r}") from None
    if not names:
        raise ValueError(f"{path}: no control points")
    return names, torch.tensor(xyz, dtype=torch.float64)


def _content_lines(text: str) -> list[tuple[int, str]]:
    return [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _read_fcsv(path: Path, text: str, frame: str | None) -> Parsed:
    header: dict[str, str] = {}
    rows = []
    for number, line in _content_lines(text):
        if line.startswith("#"):
            key, _, value = line[1:].partition("=")
            header[key.strip().lower()] = value.strip()
        else:
            rows.append((number, line))
    system = header.get("coordinatesystem")
    declared = None if system is None else _frame(system, path, _FCSV_LEGACY_FRAMES)
    names, points = _table(path, rows, header.get("columns", _FCSV_COLUMNS).split(","), "label")
    return names, _to_lps(points, _resolve(path, declared, frame, "RAS"))


def _read_csv(path: Path, text: str, frame: str | None) -> Parsed:
    (_, header), *rows = _content_lines(text)
    names, points = _table(path, rows, next(csv.reader([header])), "name")
    return names, _to_lps(points, frame or "LPS")


def _control_point(path: Path, where: str, point: object) -> tuple[str, list[float]]:
    """``(label, position)`` of one Markups JSON control point, or a ValueError saying where."""
    position = point.get("position") if isinstance(point, dict) else None
    if isinstance(position, list) and len(position) == 3 and "label" in point:  # type: ignore[operator]
        try:
            return str(point["label"]), [float(v) for v in position]  # type: ignore[index]
        except (TypeError, ValueError):
            pass
    raise ValueError(f"{path}: {where}: expected a 'label' and a 3-element numeric 'position', got {point!r}")


def _read_mrk_json(path: Path, text: str, frame: str | None) -> Parsed:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    markups = document.get("markups") if isinstance(document, dict) else None
    if not isinstance(markups, list):
        raise ValueError(f"{path}: expected a Slicer Markups JSON object with a 'markups' list")
    names, points = [], []
    for m, markup in enumerate(markups):
        if not isinstance(markup, dict):
            raise ValueError(f"{path}: markups[{m}]: expected an object, got {markup!r}")
        declared = markup.get("coordinateSystem")
        system = _resolve(path, None if declared is None else _frame(declared, path), frame, "LPS")
        units = markup.get("coordinateUnits", "mm")
        if units != "mm":
            raise ValueError(f"{path}: markups[{m}]: expected coordinateUnits 'mm', got {units!r}")
        for p, point in enumerate(markup.get("controlPoints") or []):
            label, position = _control_point(path, f"markups[{m}].controlPoints[{p}]", point)
            names.append(label)
            points.append(_to_lps(torch.tensor(position, dtype=torch.float64), system))
    if not names:
        raise ValueError(f"{path}: no control points")
    return names, torch.stack(points)


#: Suffix → parser ``(path, text, frame) -> (names, LPS points)``.
_READERS: Mapping[str, Callable[[Path, str, str | None], Parsed]] = MappingProxyType(
    {".fcsv": _read_fcsv, ".mrk.json": _read_mrk_json, ".csv": _read_csv}
)


def read_landmarks(path: PathLike, *, frame: str | None = None) -> Landmarks:
    """Read landmarks from ``.fcsv``, ``.mrk.json`` or ``.csv``, converted to LPS.

    Args:
        path: the file.
        frame: ``"LPS"`` or ``"RAS"``, the frame of coordinates the file does not declare: all
            of a plain CSV (default LPS), an ``.fcsv`` without ``CoordinateSystem`` (default
            RAS), a markup without ``coordinateSystem`` (default LPS). A declared frame that
            disagrees with ``frame`` is an error.

    Returns:
        The landmarks, points ``(N, 3)`` float64 in mm, LPS, in file order.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: unsupported suffix, empty file, malformed row or control point, unknown or
            conflicting coordinate system, no control points, repeated names. Every message
            names ``path``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    suffix = match_suffix(path, _READERS)
    if suffix is None:
        raise ValueError(f"{path}: unsupported landmark format; expected one of {', '.join(_READERS)}")
    checked_frame = None if frame is None else _frame(frame, path)
    text = path.read_text(encoding="utf-8-sig")
    if not text.strip():
        raise ValueError(f"{path}: the file is empty")
    names, points = _READERS[suffix](path, text, checked_frame)
    try:
        return Landmarks(tuple(names), points)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def _mrk_json_text(landmarks: Landmarks) -> str:
    points = [
        {"id": str(n), "label": name, "position": xyz, "positionStatus": "defined"}
        for n, (name, xyz) in enumerate(zip(landmarks.names, landmarks.points.tolist()), start=1)
    ]
    markup = {"type": "Fiducial", "coordinateSystem": "LPS", "coordinateUnits": "mm", "controlPoints": points}
    return json.dumps({"@schema": _MARKUPS_SCHEMA, "markups": [markup]}, indent=2) + "\n"


def _csv_text(landmarks: Landmarks) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["name", "x", "y", "z"])
    writer.writerows([name, *xyz] for name, xyz in zip(landmarks.names, landmarks.points.tolist()))
    return buffer.getvalue()


#: Suffix → serialiser; both write LPS coordinates.
_WRITERS: Mapping[str, Callable[[Landmarks], str]] = MappingProxyType({".mrk.json": _mrk_json_text, ".csv": _csv_text})


def write_landmarks(landmarks: Landmarks, path: PathLike) -> None:
    """Write landmarks (LPS, mm) to ``.mrk.json`` (Slicer Markups, ``coordinateSystem`` LPS) or ``.csv``.

    The CSV has the header ``name,x,y,z``; coordinates are written with full float precision,
    so reading back gives the same float64 values. The write is atomic and creates parent
    folders.

    Raises:
        ValueError: unsupported suffix.
    """
    path = Path(path)
    suffix = match_suffix(path, _WRITERS)
    if suffix is None:
        raise ValueError(f"{path}: unsupported landmark format for writing; expected one of {', '.join(_WRITERS)}")
    with atomic_output(path) as staged:
        staged.write_text(_WRITERS[suffix](landmarks), encoding="utf-8")
