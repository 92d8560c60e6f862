"""Fetching public datasets into a cache folder, or saying exactly where to put them by hand.

`download_deepfluoro` returns the cached DeepFluoro file if it is there; otherwise it downloads the
public archive (about 2.5 GB) with a progress bar, extracts the HDF5 file and moves it into place
atomically. Without network access it raises `DownloadError` naming the file, the public page to
fetch it from, and the folder to put it in. The cache folder is ``$XRENDER_DATA`` when set, else
``~/.cache/xrender``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

import h5py
from tqdm.auto import tqdm

from xrender.datasets.deepfluoro import DEEPFLUORO_FILE_NAME

__all__ = [
    "DATASETS",
    "DEEPFLUORO_PAGE",
    "DEEPFLUORO_URL",
    "DownloadError",
    "cache_folder",
    "download_deepfluoro",
]

#: The public landing page of the DeepFluoro full-resolution release (Johns Hopkins Research Data).
DEEPFLUORO_PAGE = "https://doi.org/10.7281/T1/IFSXNV"

#: Direct download of its archive, ``ipcai_2020_full_res_data.zip``.
DEEPFLUORO_URL = (
    "http://archive.data.jhu.edu/api/access/datafile/:persistentId/?persistentId=doi:10.7281/T1/IFSXNV/EAN9GH"
)

_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A dataset could not be fetched; the message says where to put it by hand."""


def cache_folder() -> Path:
    """``$XRENDER_DATA``, else ``~/.cache/xrender``."""
    return Path(os.environ.get("XRENDER_DATA") or Path.home() / ".cache" / "xrender")


def _fetch(url: str, target: Path, timeout: float, progress: bool) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as response, target.open("wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=target.name, disable=not progress) as bar:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                bar.update(len(chunk))


def download_deepfluoro(
    folder: str | os.PathLike | None = None,
    *,
    url: str = DEEPFLUORO_URL,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """The path of the DeepFluoro file in the cache, downloading it first if it is not there.

    Args:
        folder: the cache folder (default `cache_folder`); the file goes to
            ``folder/deepfluoro/ipcai_2020_full_res_data.h5``.
        url: where to fetch the archive (a ``.zip`` holding the file, or the file itself).
        timeout: seconds to wait for the server.
        progress: show a progress bar.

    Returns:
        The file's path.

    Raises:
        DownloadError: no network, a server error, or a download holding no DeepFluoro file;
            the message says where to download the file by hand and where to put it.
    """
    target = Path(folder or cache_folder()) / "deepfluoro" / DEEPFLUORO_FILE_NAME
    if target.is_file():
        return target
    by_hand = (
        f"Download {DEEPFLUORO_FILE_NAME} by hand from {DEEPFLUORO_PAGE} (the archive "
        f"ipcai_2020_full_res_data.zip, 2.5 GB), unzip it and put the .h5 file at {target} "
        "(or pass its path directly, e.g. xrender evaluate --deepfluoro FILE)."
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=target.parent) as staging:
        archive = Path(staging) / "download"
        try:
            _fetch(url, archive, timeout, progress)
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise DownloadError(f"could not download {url}: {error}. {by_hand}") from None
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as bundle:
                members = [m for m in bundle.namelist() if Path(m).name == DEEPFLUORO_FILE_NAME]
                if not members:
                    raise DownloadError(f"{url}: the archive holds no {DEEPFLUORO_FILE_NAME}. {by_hand}")
                with bundle.open(members[0]) as source, (Path(staging) / DEEPFLUORO_FILE_NAME).open("wb") as out:
                    shutil.copyfileobj(source, out, _CHUNK)
            archive = Path(staging) / DEEPFLUORO_FILE_NAME
        if not h5py.is_hdf5(archive):
            raise DownloadError(f"{url}: the download is neither a zip archive nor an HDF5 file. {by_hand}")
        os.replace(archive, target)
    return target


#: Dataset name → downloader ``(folder, progress=...) -> path``, for ``xrender download NAME``.
DATASETS: Mapping[str, Callable[..., Path]] = MappingProxyType({"deepfluoro": download_deepfluoro})
