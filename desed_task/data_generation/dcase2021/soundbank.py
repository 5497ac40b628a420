"""Assemble the DCASE 2021 soundbank (and the real-data folders) with symbolic links.

Per split (``train``, ``validation``), under ``<out_soundbank>/audio/<split>/soundbank/``:

- ``fg_target/<Class>/``: the DESED foregrounds; a file of a ``<Class>_nOn`` (``_nOff``,
  ``_nOn_nOff``) folder is linked as ``<Class>/<stem><suffix>.wav`` so the draws see its variant;
- ``non_target_fg/<class name>/``: FUSS ``fsd_data/<split>/sound`` files whose FSD50K labels
  (``FSD50K.ground_truth/dev.csv``) include a non-target class of the meta infos
  (``non_target_classes.tsv``, named with ``mid_to_class_name.tsv``);
- ``fg_tgt_ntgt/``: both of the above (what the soundscapes draw from);
- ``background/``: the DESED background folders;
- ``builder.txt``: which builder assembled the split (``2021`` or ``fix_2021_quirks``).

By default the split is what the 2021 generator (``_create_2021_soundbank_split``) made, two
quirks included:

- the suffix of a ``<Class>_nOn_nOff`` folder's files is ``_nOn`` (2021 took
  ``"_nO" + folder.split("_nO")[1]``), so the 2021 draws treat them as ``_nOn`` files;
- a non-target class (one with a file in the matching FSD50K split, ``train``/``val``) gets every
  FUSS file of that class in the FUSS split, whatever the file's own FSD50K split.

``fix_2021_quirks``: ``_nOn_nOff`` kept as such, and only the FUSS files of the matching FSD50K
split. A split is assembled in ``soundbank.partial`` and renamed when complete, so a re-run
redoes an interrupted split and skips a finished one (if the same builder made it).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from desed_task.data_generation.scaper.soundbank import AUDIO_SUFFIXES, class_of_label
from desed_task.errors import UserError

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


BUILDER_FILE = "builder.txt"


class SoundbankMismatch(UserError):
    """A soundbank split assembled by the other builder (2021 or ``fix_2021_quirks``)."""


def builder_name(fix_2021_quirks: bool) -> str:
    """What ``builder.txt`` holds for a split assembled with or without ``fix_2021_quirks``."""
    return "fix_2021_quirks" if fix_2021_quirks else "2021"


def check_builder(root: Path, fix_2021_quirks: bool) -> None:
    """Refuse a split that the other builder assembled; one without ``builder.txt`` (given by
    the user, or assembled before the file existed) is used as it is."""
    marker = Path(root) / BUILDER_FILE
    if not marker.is_file():
        logger.info("%s: no %s, using the soundbank as it is", root, BUILDER_FILE)
        return
    made, wanted = marker.read_text().strip(), builder_name(fix_2021_quirks)
    if made != wanted:
        raise SoundbankMismatch(
            f"{root}: assembled by the {made} soundbank builder, this run uses the {wanted} "
            f"one (see --fix_2021_quirks): delete {root.parents[1]} to have both splits "
            "assembled again, or give another --out_soundbank"
        )


def _link(src: Path, dest: Path, relative: bool = False) -> bool:
    """Link ``dest`` to ``src``: absolute, or relative (a link inside the split being assembled
    must survive the rename of ``soundbank.partial``). False if ``dest`` exists already."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink():
        return False
    target = os.path.relpath(src, dest.parent) if relative else Path(src).resolve()
    os.symlink(target, dest)
    return True


def linked_suffix(folder_suffix: str, fix_2021_quirks: bool = False) -> str:
    """The suffix given to the files of a ``<Class><folder_suffix>`` DESED folder.

    ``"_nOn"`` -> ``"_nOn"``, ``"_nOff"`` -> ``"_nOff"``, ``""`` -> ``""``; ``"_nOn_nOff"`` ->
    ``"_nOn"`` as in 2021 (``"_nO" + suffix.split("_nO")[1]``), kept with ``fix_2021_quirks``.
    """
    if fix_2021_quirks or not folder_suffix:
        return folder_suffix
    return "_nO" + folder_suffix.split("_nO")[1]


def non_target_files(
    meta_infos: Path, fsd50k: Path, fuss: Path, split: str, fix_2021_quirks: bool = False
) -> dict[str, list[Path]]:
    """FUSS files of ``split`` per non-target class name (see module docstring).

    A class is kept if one of its FUSS files of ``split`` is in the matching FSD50K split
    (``train``/``val``); it gets all its FUSS files of ``split`` (2021), or only those
    (``fix_2021_quirks``).
    """
    fuss_dir = Path(fuss) / "fsd_data" / split / "sound"
    fuss_ids = {p.stem for p in fuss_dir.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES}
    non_target = pd.read_csv(Path(meta_infos) / "non_target_classes.tsv", sep="\t")
    names = pd.read_csv(Path(meta_infos) / "mid_to_class_name.tsv", sep="\t")
    ground_truth = pd.read_csv(Path(fsd50k) / "FSD50K.ground_truth" / "dev.csv", sep=",", dtype=str)
    ground_truth["mids"] = ground_truth["mids"].str.split(",")
    ground_truth = ground_truth.explode("mids")
    in_fuss = ground_truth[
        ground_truth["fname"].isin(fuss_ids) & ground_truth["mids"].isin(non_target["mid"])
    ]
    fsd_split = "val" if split == "validation" else split
    in_fsd_split = in_fuss[in_fuss["split"] == fsd_split]
    kept = in_fsd_split if fix_2021_quirks else in_fuss[in_fuss["mids"].isin(in_fsd_split["mids"])]
    mid_to_name = dict(zip(names["mids"], names["labels"]))
    files: dict[str, list[Path]] = {}
    for mid, fname in sorted(set(zip(kept["mids"], kept["fname"]))):
        files.setdefault(str(mid_to_name[mid]), []).append(fuss_dir / f"{fname}.wav")
    return files


def build_soundbank_split(
    split: str,
    desed_soundbank: Path,
    meta_infos: Path,
    fsd50k: Path,
    fuss: Path,
    out_soundbank: Path,
    fix_2021_quirks: bool = False,
) -> SoundbankSplit:
    """Assemble one split (see module docstring); skip it if the same builder completed it.

    Raises:
        SoundbankMismatch: the split on disk was assembled by the other builder.
    """
    final = Path(out_soundbank) / "audio" / split / "soundbank"
    if final.is_dir():
        check_builder(final, fix_2021_quirks)
        logger.info("2021 soundbank split %s already in %s, skipping", split, final)
        return SoundbankSplit(final)
    partial = final.with_name("soundbank.partial")
    shutil.rmtree(partial, ignore_errors=True)
    layout = SoundbankSplit(partial)
    source = Path(desed_soundbank) / "audio" / split / "soundbank"

    clashes = []  # 2021 (and here): the first file linked under a name keeps it
    for class_dir in sorted(p for p in (source / "foreground").iterdir() if p.is_dir()):
        class_name = class_of_label(class_dir.name)
        suffix = linked_suffix(class_dir.name[len(class_name) :], fix_2021_quirks)
        for wav in sorted(class_dir.glob("*.wav")):
            if not _link(wav, layout.fg_target / class_name / f"{wav.stem}{suffix}.wav"):
                clashes.append(wav)
    if clashes:
        logger.warning(
            "2021 soundbank %s: %d foreground files not linked, their name is taken by a file "
            "of another variant folder (first: %s)", split, len(clashes), clashes[0],
        )  # fmt: skip
    for class_name, files in non_target_files(
        meta_infos, fsd50k, fuss, split, fix_2021_quirks
    ).items():
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
    (partial / BUILDER_FILE).write_text(builder_name(fix_2021_quirks) + "\n")
    partial.rename(final)
    n_target = sum(1 for _ in SoundbankSplit(final).fg_target.rglob("*.wav"))
    n_non_target = sum(1 for _ in SoundbankSplit(final).non_target_fg.rglob("*.wav"))
    logger.info(
        "2021 soundbank %s (%s builder): %d target and %d non-target foregrounds",
        split, builder_name(fix_2021_quirks), n_target, n_non_target,
    )  # fmt: skip
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
