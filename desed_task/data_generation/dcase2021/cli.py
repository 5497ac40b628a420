"""Command-line options and wiring of ``generate_dcase_task4_2021.py``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from desed_task.command_line import run_command
from desed_task.data_generation.dcase2021.generate import (
    Dcase2021Config,
    format_report,
    generate_dcase2021,
)
from desed_task.data_generation.dcase2021.raw_datasets import ZenodoSources
from desed_task.data_generation.dcase2021.soundscapes import Draw2021Error


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def build_parser(description: str) -> argparse.ArgumentParser:
    """The command line options (2021 recipe names, plus ours)."""
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--basedir",
        type=Path,
        default=Path("../../data"),
        help="base data folder; every path below defaults under it (%(default)s)",
    )
    p.add_argument(
        "--out_dir",
        type=Path,
        help="2021 dataset written here (default: BASEDIR/dcase2021/dataset)",
    )
    p.add_argument(
        "--out_soundbank",
        type=Path,
        help="2021 soundbank (default: BASEDIR/dcase2021/soundbank); if it already "
        "holds audio/{train,validation}/soundbank/{fg_tgt_ntgt,background}, it is used "
        "as it is and no soundbank input is downloaded",
    )
    p.add_argument(
        "--desed_soundbank",
        type=Path,
        help="existing DESED soundbank (parent of audio/, metadata/): not downloaded",
    )
    p.add_argument(
        "--fsd50k",
        type=Path,
        help="existing FSD50K (only FSD50K.ground_truth/ is read): not downloaded",
    )
    p.add_argument("--fuss", type=Path, help="existing FUSS (parent of fsd_data/): not downloaded")
    p.add_argument(
        "--desed_real",
        type=Path,
        help="existing real DESED (parent of audio/, metadata/): not downloaded",
    )
    p.add_argument(
        "--meta_infos",
        type=Path,
        help="existing 2021 meta infos (target_nb.tsv, event_cooc.tsv, ...): not downloaded",
    )
    p.add_argument(
        "--n_train", type=_count, default=10000, help="synthetic training soundscapes (%(default)s)"
    )
    p.add_argument(
        "--n_validation",
        type=_count,
        default=2500,
        help="synthetic validation soundscapes (%(default)s)",
    )
    part = p.add_mutually_exclusive_group()
    part.add_argument("--only_real", action="store_true", help="only the real (YouTube) part")
    part.add_argument(
        "--only_synth", action="store_true", help="only the soundbank and the synthetic soundscapes"
    )
    p.add_argument(
        "--jobs", type=_positive, default=3, help="parallel YouTube downloads (%(default)s)"
    )
    p.add_argument(
        "--chunk_size",
        type=_positive,
        default=10,
        help="clips per YouTube download task (%(default)s)",
    )
    p.add_argument(
        "--render_jobs",
        type=_positive,
        default=1,
        help="soundscape rendering processes; draws stay sequential, so the result "
        "does not depend on it (%(default)s)",
    )
    p.add_argument(
        "--no_resample",
        dest="resample",
        action="store_false",
        help="skip the 16 kHz copies (<folder>_16k) that confs/sed.yaml reads",
    )
    p.add_argument(
        "--seed", type=int, default=2021, help="seed of the soundscape draws (%(default)s, as 2021)"
    )
    p.add_argument(
        "--fix_2021_quirks",
        action="store_true",
        help="the project's corrected soundbank (_nOn_nOff files kept as such, non-target "
        "files of the matching FSD50K split only) and draws (onsets of _nOn/_nOff files, "
        "clipping fix, 16-bit wav) instead of the 2021 ones",
    )
    p.add_argument(
        "--mirror",
        default="https://zenodo.org",
        help="Zenodo base URL, for a mirror or a local copy (%(default)s)",
    )
    return p


def main(description: str, argv: list[str] | None = None) -> int:
    """Parse options, run every step, print the summary; the exit status (`run_command`)."""
    args = vars(build_parser(description).parse_args(argv))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return run_command(lambda: generate(args))


def generate(args: dict) -> int:
    """Every step of the options ``args`` (parsed, as a dict); prints the summary."""
    from scaper.scaper_exceptions import ScaperError  # after the NumPy alias shim

    sources = ZenodoSources(base_url=args.pop("mirror"))
    config = Dcase2021Config(**args)
    try:
        report = generate_dcase2021(config, sources=sources)
    except ScaperError as err:  # scaper refuses a soundbank file or a draw: the message names it
        raise Draw2021Error(str(err)) from err
    print(format_report(config, report))
    return 0
