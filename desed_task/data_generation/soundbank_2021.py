"""Assemble the DCASE 2021 soundbank (and the real-data folders) with symbolic links.

Per split (``train``, ``validation``), under ``<out_soundbank>/audio/<split>/soundbank/``:

- ``fg_target/<Class>/``: the DESED foregrounds; files of a ``<Class>_nOn`` (``_nOff``,
  ``_nOn_nOff``) folder are linked as ``<Class>/<stem>_nOn.wav`` so the variant survives;
- ``non_target_fg/<class name>/``: FUSS ``fsd_data/<split>/sound`` files whose FSD50K labels
  (``FSD50K.ground_truth/dev.csv``, FSD split ``train``/``val``) include a non-target class of
  the meta infos (``non_target_classes.tsv``, named with ``mid_to_class_name.tsv``);
- ``fg_tgt_ntgt/``: both of the above (what the soundscapes draw from);
- ``background/``: the DESED background folders.

A split is assembled in ``soundbank.partial`` and renamed when complete, so a re-run redoes an
interrupted split and skips a finished one.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from desed_task.data_generation.soundbank import AUDIO_SUFFIXES, class_of_label

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SoundbankSplit:
    """Folders of one split of the 2021 soundbank."""

    root: Path

    @property
    def fg_target(self) -> Path:
        return self.root / "fg_target"

    @property
    def non_target_fg(self) -> Path:
        return self.root / "non_target_fg"

    @property
    def fg_tgt_ntgt(self) -> Path:
        return self.root / "fg_tgt_ntgt"

    @property
    def background(self) -> Path:
        return self.root / "background"


def _link(src: Path, dest: Path, relative: bool = False) -> None:
    """Link ``dest`` to ``src``: absolute, or relative (a link inside the split being assembled
    must survive the rename of ``soundbank.partial``)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.is_symlink():
        target = os.path.relpath(src, dest.parent) if relative else Path(src).resolve()
        os.symlink(target, dest)


def non_target_files(
    meta_infos: Path, fsd50k: Path, fuss: Path, split: str
) -> dict[str, list[Path]]:
    """FUSS files of ``split`` per non-target class name (see module docstring)."""
    fuss_dir = Path(fuss) / "fsd_data" / split / "sound"
    fuss_ids = {p.stem for p in fuss_dir.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES}
    non_target = pd.read_csv(Path(meta_infos) / "non_target_classes.tsv", sep="\t")
    names = pd.read_csv(Path(meta_infos) / "mid_to_class_name.tsv", sep="\t")
    ground_truth = pd.read_csv(Path(fsd50k) / "FSD50K.ground_truth" / "dev.csv", sep=",", dtype=str)
    ground_truth["mids"] = ground_truth["mids"].str.split(",")
    ground_truth = ground_truth.explode("mids")
    fsd_split = "val" if split == "validation" else split
    kept = ground_truth[
        ground_truth["fname"].isin(fuss_ids)
        & ground_truth["mids"].isin(non_target["mid"])
        & (ground_truth["split"] == fsd_split)
    ]
    mid_to_name = dict(zip(names["mids"], names["labels"]))
    files: dict[str, list[Path]] = {}
    for mid, fname in sorted(zip(kept["mids"], kept["fname"])):
        files.setdefault(str(mid_to_name[mid]), []).append(fuss_dir / f"{fname}.wav")
    return files


def build_soundbank_split(
    split: str,
    desed_soundbank: Path,
    meta_infos: Path,
    fsd50k: Path,
    fuss: Path,
    out_soundbank: Path,
) -> SoundbankSplit:
    """Assemble one split (see module docstring); skip it if already complete."""
    final = Path(out_soundbank) / "audio" / split / "soundbank"
    if final.is_dir():
        logger.info("2021 soundbank split %s already in %s, skipping", split, final)
        return SoundbankSplit(final)
    partial = final.with_name("soundbank.partial")
    shutil.rmtree(partial, ignore_errors=True)
    layout = SoundbankSplit(partial)
    source = Path(desed_soundbank) / "audio" / split / "soundbank"

    for class_dir in sorted(p for p in (source / "foreground").iterdir() if p.is_dir()):
        class_name = class_of_label(class_dir.name)
        suffix = class_dir.name[len(class_name) :]
        for wav in sorted(class_dir.glob("*.wav")):
            _link(wav, layout.fg_target / class_name / f"{wav.stem}{suffix}.wav")
    for class_name, files in non_target_files(meta_infos, fsd50k, fuss, split).items():
        for wav in files:
            _link(wav, layout.non_target_fg / class_name / wav.name)

    for class_dir in sorted(layout.fg_target.iterdir()):
        for wav in sorted(class_dir.iterdir()):
            _link(wav, layout.fg_tgt_ntgt / class_dir.name / wav.name)
    if layout.non_target_fg.is_dir():
        for class_dir in sorted(layout.non_target_fg.iterdir()):
            _link(class_dir, layout.fg_tgt_ntgt / class_dir.name, relative=True)
    for bg_dir in sorted(p for p in (source / "background").iterdir() if p.is_dir()):
        _link(bg_dir, layout.background / bg_dir.name)
    layout.background.mkdir(parents=True, exist_ok=True)
    partial.rename(final)
    n_target = sum(1 for _ in SoundbankSplit(final).fg_target.rglob("*.wav"))
    n_non_target = sum(1 for _ in SoundbankSplit(final).non_target_fg.rglob("*.wav"))
    logger.info(
        "2021 soundbank %s: %d target and %d non-target foregrounds", split, n_target, n_non_target
    )
    return SoundbankSplit(final)


def link_real_data(desed_real: Path, dataset: Path) -> list[Path]:
    """Link the real DESED audio folders and metadata TSVs into the 2021 dataset layout.

    ``<desed_real>/audio/<split>/<set>/`` -> ``<dataset>/audio/<split>/<set>/`` and
    ``<desed_real>/metadata/<split>/*.tsv`` -> ``<dataset>/metadata/<split>/``; returns the links.
    """
    links = []
    for split_dir in sorted(p for p in (Path(desed_real) / "audio").iterdir() if p.is_dir()):
        for set_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            dest = Path(dataset) / "audio" / split_dir.name / set_dir.name
            _link(set_dir, dest)
            links.append(dest)
    for tsv in sorted((Path(desed_real) / "metadata").glob("*/*.tsv")):
        dest = Path(dataset) / "metadata" / tsv.parent.name / tsv.name
        _link(tsv, dest)
        links.append(dest)
    return links
