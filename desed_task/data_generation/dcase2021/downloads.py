"""Resumable, verified downloads and archive unpacking (stdlib only).

Every step writes under a temporary name and renames when complete and verified:

- :func:`download_file`: ``<dest>.part`` -> ``<dest>``; size checked against the server's
  ``Content-Length`` and, when given, the expected size / MD5 (Zenodo lists an MD5 per file);
- :func:`unpack_archive`: extracted into ``<dest>.unpacking/`` then moved into ``<dest>``, with a
  ``.complete-<archive name>`` marker written last.

A re-run skips what is complete and redoes what is partial. A failed download or a corrupt
archive raises :class:`DownloadError` naming the URL and the file, leaving nothing half-written in
the destination (partial temporaries are removed).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from desed_task.errors import UserError

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20


class DownloadError(UserError):
    """A download or an unpacking failed; names the URL and the file concerned."""

    def __init__(self, url: str, path: Path, reason: str):
        super().__init__(f"{reason} (url: {url}, file: {path})")
        self.url, self.path, self.reason = url, path, reason

    def error_line(self) -> str:
        """The error line, with what to do: a download is worth trying again."""
        return (f"{super().error_line()}; check the network (or --mirror), then run the same command "
                "again: finished steps are kept")


def md5sum(path: Path) -> str:
    """Hex MD5 of a file."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def download_file(
    url: str,
    dest: Path,
    expected_size: int | None = None,
    md5: str | None = None,
    timeout_s: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` (through ``dest.part``), verified; skip if ``dest`` exists.

    Args:
        url: http(s) URL.
        dest: final path.
        expected_size: bytes, checked if given (else the ``Content-Length`` header is checked).
        md5: hex digest, checked if given.
        timeout_s: socket timeout in seconds.

    Raises:
        DownloadError: network error, truncated file, size or checksum mismatch.
    """
    dest = Path(dest)
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, open(part, "wb") as out:
            announced = response.headers.get("Content-Length")
            announced = int(announced) if announced is not None else None
            with tqdm(
                total=announced, unit="B", unit_scale=True, desc=dest.name, leave=False
            ) as bar:
                for block in iter(lambda: response.read(CHUNK_BYTES), b""):
                    out.write(block)
                    bar.update(len(block))
        size = part.stat().st_size
        for wanted, what in ((announced, "Content-Length"), (expected_size, "expected size")):
            if wanted is not None and size != wanted:
                raise DownloadError(url, dest, f"got {size} bytes, {what} says {wanted}")
        if md5 is not None and md5sum(part) != md5.lower():
            raise DownloadError(url, dest, "MD5 checksum mismatch")
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    except (urllib.error.URLError, OSError, ValueError) as error:
        part.unlink(missing_ok=True)
        raise DownloadError(url, dest, f"download failed: {error}") from error
    part.replace(dest)
    logger.info("downloaded %s (%d bytes)", dest, dest.stat().st_size)
    return dest


def _extract(archive: Path, into: Path) -> None:
    name = archive.name.lower()
    if name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise zipfile.BadZipFile(f"corrupt member {bad}")
            zf.extractall(into)
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(into, filter="data")


def unpack_archive(archive: Path, dest_dir: Path, url: str = "") -> Path:
    """Unpack a .zip/.tar(.gz) archive into ``dest_dir``; skip if already unpacked there.

    The content is extracted into ``dest_dir/.unpacking-<archive>/`` and then moved entry by
    entry into ``dest_dir``; the marker ``dest_dir/.complete-<archive>`` is written last.
    """
    dest_dir = Path(dest_dir)
    marker = dest_dir / f".complete-{archive.name}"
    if marker.is_file():
        return dest_dir
    staging = dest_dir / f".unpacking-{archive.name}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        _extract(archive, staging)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise DownloadError(url or str(archive), archive, f"corrupt archive: {error}") from error
    _merge_move(staging, dest_dir)
    shutil.rmtree(staging)
    marker.write_text(url + "\n")
    return dest_dir


def _merge_move(src: Path, dst: Path) -> None:
    """Move the content of ``src`` into ``dst``, merging folders, replacing files."""
    dst.mkdir(parents=True, exist_ok=True)
    for entry in src.iterdir():
        target = dst / entry.name
        if entry.is_dir() and not entry.is_symlink() and target.is_dir():
            _merge_move(entry, target)
        else:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            entry.replace(target)


def download_and_unpack(
    url: str,
    dest_dir: Path,
    archive_name: str,
    downloads_dir: Path,
    md5: str | None = None,
    keep_archive: bool = False,
) -> Path:
    """Download an archive into ``downloads_dir`` and unpack it into ``dest_dir`` (both resumable)."""
    dest_dir = Path(dest_dir)
    if (dest_dir / f".complete-{archive_name}").is_file():
        logger.info("%s already unpacked in %s, skipping", archive_name, dest_dir)
        return dest_dir
    archive = download_file(url, Path(downloads_dir) / archive_name, md5=md5)
    try:
        unpack_archive(archive, dest_dir, url=url)
    except DownloadError:
        archive.unlink(missing_ok=True)  # a corrupt archive is downloaded again next time
        raise
    if not keep_archive:
        archive.unlink()
    return dest_dir
