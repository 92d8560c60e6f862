"""Landmarks: Slicer .fcsv / .mrk.json and CSV readers, RAS↔LPS, writing, errors."""

import json
import re

import pytest
import torch

from xrender import LPS_FROM_RAS
from xrender.io import read_landmarks, write_landmarks
from xrender.landmarks import Landmarks, lps_to_ras, ras_to_lps

# Two landmarks, in LPS (mm), and the same points in RAS.
NAMES = ("L5", "sacrum, tip")
LPS = torch.tensor([[12.5, -30.25, 47.0], [-3.0, 8.125, -110.5]], dtype=torch.float64)
RAS = LPS * torch.tensor([-1.0, -1.0, 1.0], dtype=torch.float64)

FCSV_COLUMNS = "# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID"


def _fcsv(system: str | None, points: torch.Tensor) -> str:
    lines = ["# Markups fiducial file version = 4.11"]
    if system is not None:
        lines.append(f"# CoordinateSystem = {system}")
    lines.append(FCSV_COLUMNS)
    for n, (name, (x, y, z)) in enumerate(zip(NAMES, points.tolist()), start=1):
        lines.append(f'vtkMRMLMarkupsFiducialNode_{n},{x},{y},{z},0,0,0,1,1,1,0,"{name}",,')
    return "\n".join(lines) + "\n"


def _mrk_json(system: str | None, points: torch.Tensor) -> str:
    markup = {
        "type": "Fiducial",
        "coordinateUnits": "mm",
        "controlPoints": [
            {"id": str(n), "label": name, "position": xyz, "positionStatus": "defined"}
            for n, (name, xyz) in enumerate(zip(NAMES, points.tolist()), start=1)
        ],
    }
    if system is not None:
        markup["coordinateSystem"] = system
    return json.dumps({"@schema": "markups-schema-v1.0.3.json#", "markups": [markup]})


def _csv(points: torch.Tensor) -> str:
    rows = [f'"{name}",{x},{y},{z}' for name, (x, y, z) in zip(NAMES, points.tolist())]
    return "\n".join(["name,x,y,z", *rows]) + "\n"


VARIANTS = {
    "fcsv_ras": ("p.fcsv", _fcsv("RAS", RAS), None),
    "fcsv_lps": ("p.fcsv", _fcsv("LPS", LPS), None),
    "fcsv_legacy_0_is_ras": ("p.fcsv", _fcsv("0", RAS), None),
    "fcsv_legacy_1_is_lps": ("p.fcsv", _fcsv("1", LPS), None),
    "fcsv_undeclared_is_ras": ("p.fcsv", _fcsv(None, RAS), None),
    "mrk_json_lps": ("p.mrk.json", _mrk_json("LPS", LPS), None),
    "mrk_json_ras": ("p.mrk.json", _mrk_json("RAS", RAS), None),
    "mrk_json_undeclared_is_lps": ("p.mrk.json", _mrk_json(None, LPS), None),
    "csv_default_lps": ("p.csv", _csv(LPS), None),
    "csv_ras": ("p.csv", _csv(RAS), "RAS"),
}


@pytest.mark.parametrize(("name", "text", "frame"), VARIANTS.values(), ids=VARIANTS.keys())
def test_every_format_reads_to_the_same_lps_points(tmp_path, name, text, frame):
    path = tmp_path / name
    path.write_text(text)
    landmarks = read_landmarks(path, frame=frame)
    assert landmarks.names == NAMES
    assert landmarks.points.dtype == torch.float64
    assert torch.equal(landmarks.points, LPS)


def test_convention_landmarks_ras_to_lps():
    ras = torch.tensor([1.0, 2.0, 3.0])
    assert torch.equal(ras_to_lps(ras), torch.tensor([-1.0, -2.0, 3.0]))
    assert torch.equal(lps_to_ras(ras_to_lps(ras)), ras)
    homogeneous = LPS_FROM_RAS @ torch.tensor([1.0, 2.0, 3.0, 1.0], dtype=torch.float64)
    assert torch.equal(ras_to_lps(ras.double()), homogeneous[:3])
    batch = torch.randn(4, 5, 3)
    assert torch.equal(lps_to_ras(batch)[..., 2], batch[..., 2])
    with pytest.raises(ValueError, match=r"points: expected shape \(\*, 3\)"):
        ras_to_lps(torch.zeros(4, 2))


@pytest.mark.parametrize("suffix", [".mrk.json", ".csv"])
def test_write_read_round_trip(tmp_path, suffix):
    points = torch.tensor([[0.1, -2.0 / 3.0, 1e-7], [1e5, 3.3, -0.0]], dtype=torch.float64)
    landmarks = Landmarks(("a", 'odd, "quoted" name'), points)
    path = tmp_path / "sub" / f"points{suffix}"
    write_landmarks(landmarks, path)
    back = read_landmarks(path)
    assert back.names == landmarks.names
    assert torch.equal(back.points, landmarks.points)
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_written_markups_json_is_lps_for_slicer(tmp_path):
    path = tmp_path / "p.mrk.json"
    write_landmarks(Landmarks(NAMES, LPS), path)
    document = json.loads(path.read_text())
    assert "markups-schema-v1" in document["@schema"]
    (markup,) = document["markups"]
    assert (markup["type"], markup["coordinateSystem"], markup["coordinateUnits"]) == ("Fiducial", "LPS", "mm")
    assert [p["position"] for p in markup["controlPoints"]] == LPS.tolist()


def test_landmarks_value():
    landmarks = Landmarks(NAMES, LPS)
    assert len(landmarks) == 2
    assert torch.equal(landmarks["L5"], LPS[0])
    assert landmarks.to_dict() == {"L5": (12.5, -30.25, 47.0), "sacrum, tip": (-3.0, 8.125, -110.5)}
    with pytest.raises(KeyError, match="no landmark 'L4'"):
        landmarks["L4"]


def test_landmarks_validation():
    with pytest.raises(ValueError, match="expected one name per point"):
        Landmarks(("a",), LPS)
    with pytest.raises(ValueError, match=r"expected unique names, got repeated \['a'\]"):
        Landmarks(("a", "a"), LPS)
    with pytest.raises(ValueError, match="expected non-empty string names"):
        Landmarks(("a", " "), LPS)
    with pytest.raises(ValueError, match=r"Landmarks.points: expected shape \(N, 3\)"):
        Landmarks(("a",), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="expected finite values"):
        Landmarks(("a",), torch.tensor([[0.0, float("inf"), 0.0]]))


# ----------------------------------------------------------------------------- errors
def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def _named(path) -> str:
    return re.escape(str(path)) + ": "


def test_missing_file(tmp_path):
    path = tmp_path / "absent.fcsv"
    with pytest.raises(FileNotFoundError, match=_named(path) + "no such file"):
        read_landmarks(path)


@pytest.mark.parametrize("name", ["p.fcsv", "p.mrk.json", "p.csv"])
def test_empty_file(tmp_path, name):
    path = _write(tmp_path, name, "\n  \n")
    with pytest.raises(ValueError, match=_named(path) + "the file is empty"):
        read_landmarks(path)


def test_malformed_fcsv_row(tmp_path):
    text = _fcsv("LPS", LPS).replace("12.5", "twelve")
    path = _write(tmp_path, "p.fcsv", text)
    with pytest.raises(ValueError, match=_named(path) + "line 4: expected a name and numeric x, y, z"):
        read_landmarks(path)


def test_short_csv_row(tmp_path):
    path = _write(tmp_path, "p.csv", "name,x,y,z\na,1,2,3\nb,1,2\n")
    with pytest.raises(ValueError, match=_named(path) + "line 3: expected a name and numeric x, y, z, got 'b,1,2'"):
        read_landmarks(path)


def test_csv_missing_columns(tmp_path):
    path = _write(tmp_path, "p.csv", "label,x,y,z\na,1,2,3\n")
    with pytest.raises(ValueError, match=_named(path) + r"expected columns \['name', 'x', 'y', 'z'\]"):
        read_landmarks(path)


def test_malformed_control_point(tmp_path):
    document = json.loads(_mrk_json("LPS", LPS))
    document["markups"][0]["controlPoints"][1]["position"] = [1.0, 2.0]
    path = _write(tmp_path, "p.mrk.json", json.dumps(document))
    with pytest.raises(ValueError, match=_named(path) + r"markups\[0\].controlPoints\[1\]: expected a 'label'"):
        read_landmarks(path)


def test_invalid_json(tmp_path):
    path = _write(tmp_path, "p.mrk.json", "{ not json")
    with pytest.raises(ValueError, match=_named(path) + "not valid JSON"):
        read_landmarks(path)


def test_json_without_markups(tmp_path):
    path = _write(tmp_path, "p.mrk.json", '{"controlPoints": []}')
    with pytest.raises(ValueError, match=_named(path) + "expected a Slicer Markups JSON object with a 'markups' list"):
        read_landmarks(path)


@pytest.mark.parametrize(
    ("name", "text"),
    [("p.fcsv", _fcsv("IJK", LPS)), ("p.mrk.json", _mrk_json("HFS", LPS))],
    ids=["fcsv", "mrk_json"],
)
def test_unknown_coordinate_system(tmp_path, name, text):
    path = _write(tmp_path, name, text)
    with pytest.raises(ValueError, match=_named(path) + r"unknown coordinate system '(IJK|HFS)'"):
        read_landmarks(path)


def test_unknown_frame_argument(tmp_path):
    path = _write(tmp_path, "p.csv", _csv(LPS))
    with pytest.raises(ValueError, match=_named(path) + "unknown coordinate system 'XYZ'"):
        read_landmarks(path, frame="XYZ")


def test_frame_conflicting_with_the_file(tmp_path):
    path = _write(tmp_path, "p.fcsv", _fcsv("RAS", RAS))
    with pytest.raises(ValueError, match=_named(path) + "the file declares coordinate system RAS, but frame='LPS'"):
        read_landmarks(path, frame="LPS")


def test_non_millimetre_units(tmp_path):
    path = _write(tmp_path, "p.mrk.json", _mrk_json("LPS", LPS).replace('"mm"', '"um"'))
    with pytest.raises(ValueError, match=_named(path) + r"markups\[0\]: expected coordinateUnits 'mm', got 'um'"):
        read_landmarks(path)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("p.fcsv", "# CoordinateSystem = LPS\n" + FCSV_COLUMNS + "\n"),
        ("p.mrk.json", '{"markups": [{"type": "Fiducial", "controlPoints": []}]}'),
        ("p.csv", "name,x,y,z\n"),
    ],
    ids=["fcsv", "mrk_json", "csv"],
)
def test_no_control_points(tmp_path, name, text):
    path = _write(tmp_path, name, text)
    with pytest.raises(ValueError, match=_named(path) + "no control points"):
        read_landmarks(path)


def test_repeated_names_in_a_file(tmp_path):
    path = _write(tmp_path, "p.csv", "name,x,y,z\na,1,2,3\na,4,5,6\n")
    with pytest.raises(ValueError, match=_named(path) + r"Landmarks: expected unique names, got repeated \['a'\]"):
        read_landmarks(path)


def test_unsupported_suffixes(tmp_path):
    path = _write(tmp_path, "p.json", "{}")
    with pytest.raises(
        ValueError, match=_named(path) + r"unsupported landmark format; expected one of \.fcsv, \.mrk\.json"
    ):
        read_landmarks(path)
    with pytest.raises(ValueError, match=_named(tmp_path / "p.fcsv") + "unsupported landmark format for writing"):
        write_landmarks(Landmarks(NAMES, LPS), tmp_path / "p.fcsv")
