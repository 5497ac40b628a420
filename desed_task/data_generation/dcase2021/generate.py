"""DESED on disk for DCASE 2021 task 4: real clips, 2021 soundbank, synthetic soundscapes.

Steps (each resumable; see ``generate_dcase_task4_2021.py --help``):

1. real DESED (weak, unlabel_in_domain, validation): metadata from Zenodo, clips from YouTube
   through a :data:`~desed_task.data_generation.dcase2021.real_audio.ClipFetcher`; clips that
   cannot be fetched are listed in ``<desed_real>/missing_files/missing_files_<set>.tsv``;
2. DESED soundbank, FSD50K ground truth, FUSS, 2021 meta infos (Zenodo archives);
3. the 2021 soundbank, by symbolic links (:mod:`~desed_task.data_generation.dcase2021.soundbank`;
   with ``fix_2021_quirks``, without the 2021 builder's quirks);
4. synthetic 2021 train / validation soundscapes, drawn exactly as the 2021 generator drew them
   (:mod:`.soundscapes`; with ``fix_2021_quirks``, the project's corrected draws of
   :mod:`desed_task.data_generation.scaper.soundscapes`), with JAMS and ``soundscapes.tsv``
   (+ ``durations.tsv`` for validation);
5. resampling of every audio folder to 16 kHz (``<folder>_16k``, as ``confs/sed.yaml`` expects).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from desed_task.data.classes import DESED_CLASSES
from desed_task.data_generation.dcase2021.downloads import download_and_unpack
from desed_task.data_generation.dcase2021.raw_datasets import (
    ZenodoSources,
    download_desed_soundbank,
    download_simple,
)
from desed_task.data_generation.dcase2021.real_audio import ClipFetcher, YtDlpFetcher, fetch_clips
from desed_task.data_generation.dcase2021.soundbank import (
    SoundbankSplit,
    build_soundbank_split,
    check_builder,
    link_real_data,
)
from desed_task.data_generation.dcase2021.soundscapes import draw_split, render_split
from desed_task.data_generation.scaper.annotations import durations_table, strong_table, write_tsv
from desed_task.data_generation.scaper.label_samplers import CooccurrenceLabelSampler
from desed_task.data_generation.scaper.soundbank import SoundbankIndex
from desed_task.data_generation.scaper.soundscapes import (
    SoundscapeParams,
    plan_soundscapes,
    render_soundscapes,
)
from desed_task.errors import UserError

logger = logging.getLogger(__name__)

SEED = 2021
REAL_SETS = {  # set name -> (metadata tsv, audio folder), relative to the DESED real folder
    "weak": ("metadata/train/weak.tsv", "audio/train/weak"),
    "unlabel_in_domain": ("metadata/train/unlabel_in_domain.tsv", "audio/train/unlabel_in_domain"),
    "validation": ("metadata/validation/validation.tsv", "audio/validation/validation"),
}


class InputMissing(UserError):
    """An input of the generator (a meta-infos table, a file of the soundbank) is absent or a
    broken link; the message names it and the option or deletion that fixes it."""


@dataclass
class Dcase2021Config:
    """Paths and options; ``None`` paths default to the 2021 layout under ``basedir``.

    A path given explicitly for an input dataset means "already on disk, do not download".
    """

    basedir: Path = Path("../../data")
    out_dir: Path | None = None
    out_soundbank: Path | None = None
    desed_soundbank: Path | None = None
    fsd50k: Path | None = None
    fuss: Path | None = None
    desed_real: Path | None = None
    meta_infos: Path | None = None
    n_train: int = 10000
    n_validation: int = 2500
    only_real: bool = False
    only_synth: bool = False
    jobs: int = 3  # parallel YouTube downloads
    chunk_size: int = 10  # clips per download task
    render_jobs: int = 1  # scaper processes
    resample: bool = True
    seed: int = SEED
    fix_2021_quirks: bool = False  # the corrected soundbank and draws instead of the 2021 ones
    given: set[str] = field(default_factory=set)  # inputs the user pointed at

    def __post_init__(self) -> None:
        base = Path(self.basedir)
        defaults = {
            "desed_soundbank": base / "raw_datasets" / "desed_soundbank",
            "fsd50k": base / "raw_datasets" / "fsd50k",
            "fuss": base / "raw_datasets" / "FUSS",
            "desed_real": base / "raw_datasets" / "desed_real",
            "meta_infos": base / "meta_infos",
            "out_soundbank": base / "dcase2021" / "soundbank",
            "out_dir": base / "dcase2021" / "dataset",
        }
        for name, default in defaults.items():
            value = getattr(self, name)
            if value is None:
                setattr(self, name, default)
            else:
                setattr(self, name, Path(value))
                self.given.add(name)

    @property
    def downloads(self) -> Path:
        return Path(self.basedir) / "raw_datasets" / "downloads"


@dataclass
class Dcase2021Report:
    """What a run left on disk."""

    fetched: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    missing_tsvs: dict[str, Path] = field(default_factory=dict)
    synthetic: dict[str, int] = field(default_factory=dict)
    resampled: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def prepare_real(
    config: Dcase2021Config, sources: ZenodoSources, fetcher: ClipFetcher, report: Dcase2021Report
) -> None:
    """Step 1: real DESED metadata and clips; missing clips listed, never fatal."""
    real = Path(config.desed_real)
    if "desed_real" in config.given:
        logger.info("real DESED given at %s, not downloading", real)
    else:
        record, name = sources.real_metadata
        download_and_unpack(sources.url(record, name), real, name, config.downloads)
        for set_name, (tsv, audio) in REAL_SETS.items():
            filenames = pd.read_csv(real / tsv, sep="\t")["filename"].drop_duplicates().tolist()
            missing = fetch_clips(
                filenames,
                real / audio,
                fetcher,
                config.jobs,
                config.chunk_size,
                description=set_name,
            )
            missing_tsv = real / "missing_files" / f"missing_files_{set_name}.tsv"
            if missing.empty:
                missing_tsv.unlink(missing_ok=True)
            else:
                write_tsv(missing, missing_tsv)
                report.missing_tsvs[set_name] = missing_tsv
            report.missing[set_name] = len(missing)
            report.fetched[set_name] = len(filenames) - len(missing)
    durations = real / "metadata" / "validation" / "validation_durations.tsv"
    validation_audio = real / REAL_SETS["validation"][1]
    if not durations.exists() and validation_audio.is_dir():
        from desed_task.data.resample import write_durations

        write_durations(validation_audio, durations)
    if (real / "audio").is_dir():
        link_real_data(real, Path(config.out_dir))


def existing_soundbank(out_soundbank: Path) -> dict[str, SoundbankSplit] | None:
    """The splits of a complete 2021 soundbank (``fg_tgt_ntgt/`` and ``background/`` of both
    splits under ``audio/<split>/soundbank/``), or None if one is missing."""
    splits = {
        split: SoundbankSplit(Path(out_soundbank) / "audio" / split / "soundbank")
        for split in ("train", "validation")
    }
    complete = all(s.fg_tgt_ntgt.is_dir() and s.background.is_dir() for s in splits.values())
    if not complete:
        return None
    for split in splits.values():
        for folder in (split.fg_tgt_ntgt, split.background):
            broken = [p for p in folder.iterdir() if p.is_symlink() and not p.exists()]
            if broken:  # earlier versions linked non-target classes into soundbank.partial
                raise InputMissing(
                    f"{broken[0]}: broken link in the 2021 soundbank; delete {split.root} "
                    "to have it assembled again"
                )
    return splits


def prepare_soundbank(config: Dcase2021Config, sources: ZenodoSources) -> dict[str, SoundbankIndex]:
    """Steps 2 and 3: raw datasets (downloaded unless given) and the 2021 soundbank splits.

    A complete 2021 soundbank at ``out_soundbank`` is used as it is: nothing is downloaded
    for it (only the meta infos, if neither given nor on disk). One that the other builder
    assembled (``builder.txt``, see :func:`check_builder`) is refused.
    """
    layouts = existing_soundbank(Path(config.out_soundbank))
    for layout in (layouts or {}).values():
        check_builder(layout.root, config.fix_2021_quirks)
    needed = ["meta_infos"] if layouts else ["desed_soundbank", "fsd50k", "fuss", "meta_infos"]
    if layouts:
        logger.info("2021 soundbank complete in %s, using it as it is", config.out_soundbank)
    if "desed_soundbank" in needed and "desed_soundbank" not in config.given:
        download_desed_soundbank(sources, Path(config.desed_soundbank), config.downloads)
    if "fsd50k" in needed and "fsd50k" not in config.given:
        download_simple(
            sources, [sources.fsd50k_ground_truth], Path(config.fsd50k), config.downloads
        )
    if "fuss" in needed and "fuss" not in config.given:
        download_simple(
            sources, [sources.fuss_data, sources.fuss_license], Path(config.fuss), config.downloads
        )
    if "meta_infos" not in config.given:
        download_simple(sources, [sources.meta_infos], Path(config.meta_infos), config.downloads)
    if layouts is None:
        layouts = {
            split: build_soundbank_split(
                split,
                Path(config.desed_soundbank),
                Path(config.meta_infos),
                Path(config.fsd50k),
                Path(config.fuss),
                Path(config.out_soundbank),
                config.fix_2021_quirks,
            )
            for split in ("train", "validation")
        }
    return {
        split: SoundbankIndex.scan(layout.fg_tgt_ntgt, layout.background)
        for split, layout in layouts.items()
    }


def _read_meta_infos(meta: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    tables = []
    for name in ("target_nb.tsv", "event_cooc.tsv"):
        if not (meta / name).is_file():
            raise InputMissing(
                f"{meta / name}: missing; give the 2021 meta infos folder with --meta_infos "
                "(or leave it out to download it)"
            )
        tables.append(pd.read_csv(meta / name, sep="\t"))
    return tables[0], tables[1]


def generate_synthetic(
    config: Dcase2021Config, banks: dict[str, SoundbankIndex], report: Dcase2021Report
) -> None:
    """Step 4: synthetic 2021 soundscapes, JAMS and metadata, seeded.

    Default: the 2021 draws (scaper seeded with ``seed`` for each split, one NumPy generator
    seeded with ``seed`` passed from train to validation). ``fix_2021_quirks``: the project's
    corrected draws (:func:`plan_soundscapes`, seeds ``seed`` and ``seed + 1``).
    """
    target_nb, event_cooc = _read_meta_infos(Path(config.meta_infos))
    params = SoundscapeParams()
    global_rng = np.random.RandomState(config.seed)  # 2021's np.random.seed(seed) at import
    for split, n_clips, seed in (
        ("train", config.n_train, config.seed),
        ("validation", config.n_validation, config.seed + 1),
    ):
        bank = banks[split]
        out = Path(config.out_dir) / "audio" / split / f"synthetic21_{split}" / "soundscapes"
        start = time.perf_counter()
        if config.fix_2021_quirks:
            sampler = CooccurrenceLabelSampler(target_nb, event_cooc, bank.classes)
            plans = plan_soundscapes(n_clips, bank, sampler, params, seed)
            events = render_soundscapes(
                plans,
                bank,
                params,
                out,
                jobs=config.render_jobs,
                keep_classes=DESED_CLASSES,
                description=f"synthetic21_{split}",
            )
        else:
            drawn = draw_split(
                n_clips,
                bank.foreground_dir,
                bank.background_dir,
                target_nb,
                event_cooc,
                config.seed,
                global_rng,
            )
            events = render_split(
                drawn,
                n_clips,
                out,
                jobs=config.render_jobs,
                keep_classes=DESED_CLASSES,
                description=f"synthetic21_{split}",
            )
        metadata = Path(config.out_dir) / "metadata" / split / f"synthetic21_{split}"
        write_tsv(strong_table(events), metadata / "soundscapes.tsv")
        if split == "validation":
            write_tsv(
                durations_table({f: params.duration_s for f in events}), metadata / "durations.tsv"
            )
        report.synthetic[split] = len(events)
        logger.info(
            "synthetic21_%s: %d clips in %.1f s", split, len(events), time.perf_counter() - start
        )


def resample_all(config: Dcase2021Config, report: Dcase2021Report) -> None:
    """Step 5: every 44.1 kHz audio folder to ``<folder>_16k`` (lead's resumable resampler)."""
    from desed_task.data.resample import resample_folder

    audio = Path(config.out_dir) / "audio"
    folders = [
        audio / "train" / "synthetic21_train" / "soundscapes",
        audio / "validation" / "synthetic21_validation" / "soundscapes",
        audio / "train" / "weak",
        audio / "train" / "unlabel_in_domain",
        audio / "validation" / "validation",
        audio / "eval21",
    ]
    for src in folders:
        if src.is_dir():
            dst = src.with_name(src.name + "_16k")
            resample_folder(src, dst, 16000)
            report.resampled[str(src)] = dst


GIVEN_INPUTS = ("desed_soundbank", "fsd50k", "fuss", "desed_real", "meta_infos")
"""The options that point at a dataset already on disk (not downloaded)."""


def check_given_inputs(config: Dcase2021Config) -> None:
    """Refuse, before any work, an input folder given on the command line that does not exist."""
    for name in GIVEN_INPUTS:
        folder = Path(getattr(config, name))
        if name in config.given and not folder.is_dir():
            raise InputMissing(f"--{name} {folder}: no such folder; give the folder of the dataset on disk, "
                               "or leave the option out to have it downloaded")


def generate_dcase2021(
    config: Dcase2021Config,
    sources: ZenodoSources | None = None,
    fetcher: ClipFetcher | None = None,
) -> Dcase2021Report:
    """Run the steps (``only_real`` / ``only_synth`` select a part); return what was done."""
    check_given_inputs(config)
    sources = sources or ZenodoSources()
    fetcher = fetcher or YtDlpFetcher()
    report = Dcase2021Report()
    if not config.only_synth:
        prepare_real(config, sources, fetcher, report)
    if not config.only_real:
        banks = prepare_soundbank(config, sources)
        generate_synthetic(config, banks, report)
    if config.resample:
        resample_all(config, report)
    if not (Path(config.out_dir) / "audio" / "eval21").is_dir():
        report.notes.append(
            "eval21 (the 2021 evaluation set) is not downloaded by this script: put its clips in "
            f"{Path(config.out_dir) / 'audio' / 'eval21'} (they are resampled on the next run)."
        )
    return report


def sed_yaml_paths(out_dir: Path) -> dict[str, Path]:
    """The data paths of ``confs/sed.yaml`` under a dataset folder (for the final report)."""
    a, m = Path(out_dir) / "audio", Path(out_dir) / "metadata"
    return {
        "synth_folder": a / "train/synthetic21_train/soundscapes_16k",
        "synth_tsv": m / "train/synthetic21_train/soundscapes.tsv",
        "weak_folder": a / "train/weak_16k",
        "weak_tsv": m / "train/weak.tsv",
        "unlabeled_folder": a / "train/unlabel_in_domain_16k",
        "synth_val_folder": a / "validation/synthetic21_validation/soundscapes_16k",
        "synth_val_tsv": m / "validation/synthetic21_validation/soundscapes.tsv",
        "synth_val_dur": m / "validation/synthetic21_validation/durations.tsv",
        "test_folder": a / "validation/validation_16k",
        "test_tsv": m / "validation/validation.tsv",
        "test_dur": m / "validation/validation_durations.tsv",
        "eval_folder": a / "eval21_16k",
    }


def format_report(config: Dcase2021Config, report: Dcase2021Report) -> str:
    """Human-readable summary: what is on disk, what is missing, what to run next."""
    lines = ["", "=== DESED 2021 data: summary ==="]
    for set_name in REAL_SETS:
        if set_name in report.fetched:
            lines.append(
                f"real {set_name:18s} fetched {report.fetched[set_name]:6d}  missing {report.missing[set_name]:6d}"
            )
    for split, n in report.synthetic.items():
        lines.append(f"synthetic21_{split:10s} {n:6d} soundscapes")
    lines.append("confs/sed.yaml data paths:")
    for key, path in sed_yaml_paths(Path(config.out_dir)).items():
        if path.is_dir():
            state = f"{sum(1 for p in path.iterdir() if p.suffix == '.wav'):6d} wav"
        else:
            state = "    ok    " if path.is_file() else "  MISSING "
        lines.append(f"  {key:18s} {state}  {path}")
    if report.missing_tsvs:
        lines.append("Clips that could not be fetched are listed in:")
        lines += [f"  {tsv}" for tsv in report.missing_tsvs.values()]
        lines.append(
            "Retry only the missing ones (clips on disk are skipped): "
            f"python generate_dcase_task4_2021.py --basedir {config.basedir} --only_real"
        )
        lines.append("Clips still missing after retries can be requested from the task organisers.")
    lines += report.notes
    lines.append("Next: python train_sed.py")
    return "\n".join(lines)
