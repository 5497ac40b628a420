"""The HDF5 file of one set's embeddings, in the layout of the 2023 recipe, written resumably.

Layout (the 2023 ``extract_embeddings.py``; its training sets read only the first three):
    filenames (clips,): variable-length UTF-8 strings, the clip's file name without ``.wav``
        (``Path(file).stem``); a reader maps ``name.decode()`` to its row.
    global_embeddings (clips, dim) float32: the mean of the frame embeddings over tokens.
    frame_embeddings (clips, dim, tokens) float32: BEATs tokens, channels first (496 for 10 s).
Ours adds ``extracted`` (clips,) uint8 (1: row written, 2: clip unreadable) and attributes that
say what produced the file, so that an interrupted extraction can resume.

Crash safety: the file is built under ``<out>.part``; its datasets are created whole at the
start (contiguous, storage allocated) and then filled by plain writes at their byte offsets, so
a killed run never leaves HDF5 metadata half-written. A row's flag is set only after its data is
on disk. When every clip is done the unreadable clips' names are blanked (so no reader takes
their empty row for embeddings) and ``.part`` is renamed to ``<out>``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import h5py
import numpy as np

from desed_task.errors import UserError

log = logging.getLogger(__name__)

FILENAMES, GLOBAL, FRAME, EXTRACTED = "filenames", "global_embeddings", "frame_embeddings", "extracted"
PENDING, DONE, UNREADABLE = 0, 1, 2
FLOAT = np.dtype("<f4")


class EmbeddingsError(UserError):
    """An embeddings file or folder cannot be used as asked; the message names it and the fix."""


@dataclasses.dataclass(frozen=True)
class StoreIdentity:
    """What a file's rows depend on; a resumed extraction must match it exactly."""

    checkpoint_sha256: str
    clip_seconds: float
    dim: int
    n_tokens: int

    def attrs(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_attrs(cls, attrs) -> StoreIdentity | None:
        try:
            return cls(str(attrs["checkpoint_sha256"]), float(attrs["clip_seconds"]),
                       int(attrs["dim"]), int(attrs["n_tokens"]))
        except KeyError:
            return None


def partial_path(out: Path) -> Path:
    """Where the file is built until it is complete."""
    return out.with_name(out.name + ".part")


def _allocated_dataset(f: h5py.File, name: str, shape: tuple[int, ...]) -> None:
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_layout(h5py.h5d.CONTIGUOUS)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)  # offsets exist from the start
    f.create_dataset(name, shape=shape, dtype=FLOAT, dcpl=dcpl, fill_time="never")


def create_store(path: Path, names: list[str], identity: StoreIdentity, folder: Path) -> None:
    """Create the whole file for ``names`` (stems), every row pending; atomic (built beside
    ``path``, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    building = path.with_name(path.name + ".new")
    n = len(names)
    with h5py.File(building, "w") as f:
        f.create_dataset(FILENAMES, data=names, dtype=h5py.string_dtype())
        _allocated_dataset(f, GLOBAL, (n, identity.dim))
        _allocated_dataset(f, FRAME, (n, identity.dim, identity.n_tokens))
        f.create_dataset(EXTRACTED, data=np.zeros(n, dtype=np.uint8))
        f.attrs.update(identity.attrs())
        f.attrs["audio_folder"] = str(folder)
    os.replace(building, path)


@dataclasses.dataclass
class StoreState:
    """A file's names, flags, identity and the byte offsets of its datasets."""

    path: Path
    names: list[str]
    flags: np.ndarray
    identity: StoreIdentity | None
    offsets: dict[str, int]


def read_store(path: Path) -> StoreState:
    """Read what an extraction needs from a file (ours, complete or not, or the 2023 recipe's).

    Raises:
        EmbeddingsError: the file is not readable HDF5 or lacks the 2023 datasets.
    """
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in (FILENAMES, GLOBAL, FRAME) if k not in f]
            if missing:
                raise EmbeddingsError(f"{path}: not an embeddings file (no {', '.join(missing)})")
            names = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in f[FILENAMES][()]]
            flags = f[EXTRACTED][()] if EXTRACTED in f else np.full(len(names), DONE, np.uint8)
            offsets = {}
            for key in (GLOBAL, FRAME, EXTRACTED):
                offset = f[key].id.get_offset() if key in f else None
                if offset is not None:
                    offsets[key] = offset
            return StoreState(path, names, flags, StoreIdentity.from_attrs(f.attrs), offsets)
    except (OSError, KeyError) as err:
        raise EmbeddingsError(f"{path}: not a readable HDF5 file ({err})") from err


class RowWriter:
    """Writes rows of a ``.part`` file at its datasets' byte offsets (no HDF5 library calls).

    Rows of one call are written, synced, and only then flagged, so a killed run leaves no
    flagged row half-written.
    """

    def __init__(self, state: StoreState):
        if set(state.offsets) != {GLOBAL, FRAME, EXTRACTED} or state.identity is None:
            raise EmbeddingsError(f"{state.path}: not an unfinished extraction of this program")
        self.state = state
        self.dim, self.n_tokens = state.identity.dim, state.identity.n_tokens
        self.fd = os.open(state.path, os.O_RDWR)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write(self, rows: list[int], global_rows: np.ndarray, frame_rows: np.ndarray) -> None:
        """rows: file rows; global_rows (len(rows), dim); frame_rows (len(rows), dim, tokens)."""
        global_bytes, frame_bytes = self.dim * FLOAT.itemsize, self.dim * self.n_tokens * FLOAT.itemsize
        for k, row in enumerate(rows):
            os.pwrite(self.fd, np.ascontiguousarray(global_rows[k], FLOAT).tobytes(),
                      self.state.offsets[GLOBAL] + row * global_bytes)
            os.pwrite(self.fd, np.ascontiguousarray(frame_rows[k], FLOAT).tobytes(),
                      self.state.offsets[FRAME] + row * frame_bytes)
        os.fdatasync(self.fd)
        self.flag(rows, DONE)

    def flag(self, rows: list[int], status: int) -> None:
        for row in rows:
            os.pwrite(self.fd, bytes([status]), self.state.offsets[EXTRACTED] + row)
            self.state.flags[row] = status
        os.fdatasync(self.fd)


def finish_store(state: StoreState, out: Path) -> None:
    """Blank the names of unreadable clips and move the ``.part`` file to ``out``."""
    unreadable = np.flatnonzero(state.flags == UNREADABLE)
    if len(unreadable):
        with h5py.File(state.path, "r+") as f:
            for row in unreadable:
                f[FILENAMES][row] = ""
    os.replace(state.path, out)
