"""What the X-ray readers (`xrender.io.xray`, `xrender.io.dicom`) share: the file check and colour → grey."""

from __future__ import annotations

from pathlib import Path

from xrender.io._paths import PathLike

#: Weights of red, green and blue in the grey value of a colour image (ITU-R BT.601 luma, as
#: Pillow's ``convert("L")``), applied to the stored values.
LUMINANCE_WEIGHTS = (0.299, 0.587, 0.114)


def checked_image_file(path: PathLike, frame: int, caller: str) -> Path:
    """``path`` as a `Path` once it names a non-empty file and ``frame`` is a non-negative int.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``frame`` is not a non-negative int, ``path`` is a folder or an empty file.
    """
    path = Path(path)
    if isinstance(frame, bool) or not isinstance(frame, int) or frame < 0:
        raise ValueError(f"{caller}: expected a non-negative int frame, got {frame!r}")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; {caller} reads one image file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: could not read: the file is empty (0 bytes)")
    return path
