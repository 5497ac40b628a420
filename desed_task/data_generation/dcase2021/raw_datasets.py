"""Download the raw datasets the DCASE 2021 recipe builds on (Zenodo), resumably.

Each function fills one folder and writes ``<folder>/.complete`` last; a folder with that
marker is skipped. URLs come from :class:`ZenodoSources` (tests point it at a local server).
MD5s are checked where an ``md5`` entry is given; sizes are always checked against the server.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from desed_task.data_generation.dcase2021.downloads import download_and_unpack, download_file

logger = logging.getLogger(__name__)

COMPLETE = ".complete"


@dataclass(frozen=True)
class ZenodoSources:
    """Where every archive of the 2021 recipe lives (record ids as in the public recipe)."""

    base_url: str = "https://zenodo.org"
    sins_audio_parts: int = 23
    tut_audio_parts: int = 10
    md5: dict[str, str] = field(default_factory=dict)  # archive name -> hex digest, optional

    def url(self, record: int, name: str) -> str:
        return f"{self.base_url}/record/{record}/files/{name}?download=1"

    # (record, archive name) of each download
    real_metadata = (4639776, "audioset_metadata.tar.gz")
    desed_foregrounds = (4307908, "DESED_synth_soundbank.tar.gz")
    soundbank_validation_split = (4307908, "soundbank_validation.tsv")
    sins_meta = (1247102, "DCASE2018-task5-dev.meta.zip")
    tut_meta = (400515, "TUT-acoustic-scenes-2017-development.meta.zip")
    fsd50k_ground_truth = (4060432, "FSD50K.ground_truth.zip")
    fuss_data = (3743844, "FUSS_fsd_data.tar.gz")
    fuss_license = (4012661, "FUSS_license_doc.tar.gz")
    meta_infos = (4569096, "meta_infos_2021.tar.gz")

    def sins_audio(self) -> list[tuple[int, str]]:
        return [
            (1247102, f"DCASE2018-task5-dev.audio.{i}.zip")
            for i in range(1, self.sins_audio_parts + 1)
        ]

    def tut_audio(self) -> list[tuple[int, str]]:
        return [
            (400515, f"TUT-acoustic-scenes-2017-development.audio.{i}.zip")
            for i in range(1, self.tut_audio_parts + 1)
        ]


def _fetch(sources: ZenodoSources, entry: tuple[int, str], dest_dir: Path, downloads: Path) -> Path:
    record, name = entry
    return download_and_unpack(
        sources.url(record, name), dest_dir, name, downloads, md5=sources.md5.get(name)
    )


def is_complete(folder: Path) -> bool:
    """Whether a raw dataset folder was fully prepared."""
    return (Path(folder) / COMPLETE).is_file()


def _mark_complete(folder: Path) -> None:
    (Path(folder) / COMPLETE).write_text("ok\n")


def download_simple(
    sources: ZenodoSources, entries: list[tuple[int, str]], folder: Path, downloads: Path
) -> Path:
    """Download and unpack archives into ``folder`` (FSD50K ground truth, FUSS, meta infos...)."""
    if is_complete(folder):
        logger.info("%s complete, skipping", folder)
        return folder
    for entry in tqdm(entries, desc=f"download {Path(folder).name}"):
        _fetch(sources, entry, folder, downloads)
    _mark_complete(folder)
    return folder


def _filter_background(meta_txt: Path, audio_dir: Path, classes: set[str], dest: Path) -> int:
    """Copy the files of ``audio_dir`` whose class in ``meta_txt`` (``path<TAB>class...``) is kept."""
    meta = pd.read_csv(meta_txt, sep="\t", header=None)
    kept = {Path(p).name for p, c in zip(meta[0], meta[1]) if c in classes}
    dest.mkdir(parents=True, exist_ok=True)
    n_copied = 0
    for name in tqdm(sorted(kept), desc=f"filter {dest.name}"):
        if (audio_dir / name).is_file():
            shutil.copy2(audio_dir / name, dest / name)
            n_copied += 1
    return n_copied


def split_soundbank_train_validation(folder: Path, split_tsv: Path) -> int:
    """Move the files listed in ``split_tsv`` (column ``filepath``, validation paths) out of train."""
    moved = 0
    for filepath in pd.read_csv(split_tsv, sep="\t")["filepath"]:
        target = Path(folder) / filepath
        source = Path(folder) / filepath.replace("validation", "train")
        if source.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            source.replace(target)
            moved += 1
    return moved


def download_desed_soundbank(sources: ZenodoSources, folder: Path, downloads: Path) -> Path:
    """DESED soundbank: Zenodo foregrounds, SINS ("other") and TUT (home, office, library)
    backgrounds, then the official 90 %/10 % train/validation split."""
    folder = Path(folder)
    if is_complete(folder):
        logger.info("DESED soundbank complete in %s, skipping", folder)
        return folder
    _fetch(sources, sources.desed_foregrounds, folder, downloads)
    train_bank = folder / "audio" / "train" / "soundbank"
    for name, meta_entry, parts, top, classes, bg_name in (
        ("SINS", sources.sins_meta, sources.sins_audio(), "DCASE2018-task5-dev", {"other"}, "sins"),
        (
            "TUT",
            sources.tut_meta,
            sources.tut_audio(),
            "TUT-acoustic-scenes-2017-development",
            {"home", "office", "library"},
            "tut-scenes-2017-dev",
        ),
    ):
        bg_done = train_bank / "background" / f".complete-{bg_name}"
        if bg_done.is_file():
            continue
        staging = downloads / f"{bg_name}_unpacked"
        for entry in tqdm([meta_entry, *parts], desc=f"download {name}"):
            _fetch(sources, entry, staging, downloads)
        n_files = _filter_background(
            staging / top / "meta.txt",
            staging / top / "audio",
            classes,
            train_bank / "background" / bg_name,
        )
        logger.info("%s: %d background files kept", name, n_files)
        bg_done.write_text("ok\n")
        shutil.rmtree(staging)
    record, name = sources.soundbank_validation_split
    split_tsv = download_file(sources.url(record, name), folder / name, md5=sources.md5.get(name))
    moved = split_soundbank_train_validation(folder, split_tsv)
    logger.info("DESED soundbank split: %d files moved to validation", moved)
    _mark_complete(folder)
    return folder
