"""Reading a set's embeddings by clip name, for training, validation and test.

The 2023 recipe's datasets mapped ``filenames[i].decode()`` (the clip's stem) to row ``i`` when
the set was built and read one row per item with h5py. So does :class:`EmbeddingsReader`: the
names, flags and shapes are read once; the rows are read item by item from a file handle opened
lazily in each process (loader workers included), since the frame embeddings of DESED are far
larger than memory (about 25k clips x 768 x 496 float32, 38 GB).

Which file a set reads: ``<pretrained.extracted_embeddings_dir>/<pretrained.model>/<file>.hdf5``
with the 2023 file names (``embeddings_file`` of the table of sets, `desed_task.sets`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import torch

from desed_task.data.embeddings_store import (
    DONE,
    EXTRACTED,
    FILENAMES,
    FRAME,
    GLOBAL,
    EmbeddingsError,
)
from desed_task.sets import SETS_BY_NAME

DATASETS = {"frame": FRAME, "global": GLOBAL}
CLIP_SECONDS_2023 = 10.0  # the 2023 files carry no clip length: they were all of 10 s clips


def embeddings_dir(config: dict, source: str) -> Path:
    """``pretrained.extracted_embeddings_dir / pretrained.model``, where 2023 kept the files."""
    pretrained = config.get("pretrained")
    if not pretrained or not pretrained.get("extracted_embeddings_dir"):
        raise EmbeddingsError(
            f"{source}: set 'pretrained.extracted_embeddings_dir' (and 'pretrained.model: beats'), "
            "the folder the embeddings files go to"
        )
    return Path(pretrained["extracted_embeddings_dir"]) / pretrained["model"]


def set_file(config: dict, set_name: str, source: str = "the config") -> Path:
    """The embeddings file of one of the datamodule's sets (its ``embeddings_file`` in
    `desed_task.sets`)."""
    return embeddings_dir(config, source) / f"{SETS_BY_NAME[set_name].embeddings_file}.hdf5"


class EmbeddingsReader:
    """Rows of one embeddings file, looked up by clip file name.

    Args:
        path: the HDF5 file (ours or the 2023 recipe's).
        embedding_type: "frame" (rows (dim, tokens)) or "global" (rows (dim,)).
        how_to_extract: the command that writes the file, for messages.

    Raises:
        EmbeddingsError: the file is absent or not an embeddings file.
    """

    def __init__(self, path: str | Path, embedding_type: str = "frame", how_to_extract: str = "") -> None:
        self.path = Path(path)
        self.dataset = DATASETS[embedding_type]
        self.how_to_extract = how_to_extract
        if not self.path.is_file():
            raise EmbeddingsError(f"{self.path}: embeddings file not found; {self._fix()}")
        try:
            with h5py.File(self.path, "r") as f:
                if FILENAMES not in f or self.dataset not in f:
                    raise EmbeddingsError(f"{self.path}: not an embeddings file (no {FILENAMES} or {self.dataset}); {self._fix()}")
                names = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in f[FILENAMES][()]]
                done = f[EXTRACTED][()] == DONE if EXTRACTED in f else np.ones(len(names), bool)
                self.row_shape = tuple(f[self.dataset].shape[1:])
                self.clip_seconds = float(f.attrs.get("clip_seconds", CLIP_SECONDS_2023))
        except OSError as err:
            raise EmbeddingsError(f"{self.path}: not a readable HDF5 file ({err}); {self._fix()}") from err
        self.rows = {name: row for row, (name, ok) in enumerate(zip(names, done)) if name and ok}
        self._file: h5py.File | None = None
        self._pid: int | None = None

    def _fix(self) -> str:
        return f"extract it with: {self.how_to_extract}" if self.how_to_extract else "extract it again"

    @property
    def dim(self) -> int:
        """Channels of a row (768 for BEATs iter3)."""
        return int(self.row_shape[0])

    def check_covers(self, filenames: Sequence[str], set_name: str) -> None:
        """Raise EmbeddingsError naming the first clip of ``filenames`` without a row."""
        missing = [f for f in filenames if Path(f).stem not in self.rows]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise EmbeddingsError(
                f"{self.path}: no embeddings of clip {missing[0]}{more} of the {set_name} set; the "
                f"file was extracted from other audio or the clip was unreadable then - delete the "
                f"file and {self._fix()}"
            )

    def __getstate__(self) -> dict:  # loader workers started by spawn open their own handle
        return {**self.__dict__, "_file": None, "_pid": None}

    def row(self, filename: str) -> torch.Tensor:
        """The clip's embeddings: (dim, tokens) frame or (dim,) global, float32."""
        if self._file is None or self._pid != os.getpid():
            self._file, self._pid = h5py.File(self.path, "r"), os.getpid()
        return torch.from_numpy(np.asarray(self._file[self.dataset][self.rows[Path(filename).stem]], dtype=np.float32))
