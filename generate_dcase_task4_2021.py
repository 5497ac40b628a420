"""Put DESED for DCASE 2021 task 4 on disk: real clips, 2021 soundbank, synthetic soundscapes.

    python generate_dcase_task4_2021.py --basedir ../../data

Every step is resumable (re-run the same command after an interruption). A path given for an
input dataset (--desed_soundbank, --fsd50k, --fuss, --desed_real, --meta_infos) means "already
on disk, do not download". YouTube clips that cannot be fetched are listed per set in
<desed_real>/missing_files/; they never stop the run. See the "Data" section of README.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from desed_task.data_generation.dcase2021 import (
    Dcase2021Config,
    format_report,
    generate_dcase2021,
)
from desed_task.data_generation.downloads import DownloadError
from desed_task.data_generation.raw_datasets_2021 import ZenodoSources


def build_parser() -> argparse.ArgumentParser:
    """The command line options (2021 recipe names)."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--basedir", type=Path, default=Path("../../data"), help="base data folder")
    p.add_argument(
        "--out_dir", type=Path, help="2021 dataset folder (default: <basedir>/dcase2021/dataset)"
    )
    p.add_argument(
        "--out_soundbank", type=Path, help="2021 soundbank (default: <basedir>/dcase2021/soundbank)"
    )
    p.add_argument(
        "--desed_soundbank",
        type=Path,
        help="existing DESED soundbank (parent of audio/, metadata/)",
    )
    p.add_argument(
        "--fsd50k", type=Path, help="existing FSD50K (only FSD50K.ground_truth/ is needed)"
    )
    p.add_argument("--fuss", type=Path, help="existing FUSS (parent of fsd_data/)")
    p.add_argument(
        "--desed_real", type=Path, help="existing real DESED (parent of audio/, metadata/)"
    )
    p.add_argument("--meta_infos", type=Path, help="existing 2021 meta infos folder")
    p.add_argument("--n_train", type=int, default=10000, help="synthetic training soundscapes")
    p.add_argument(
        "--n_validation", type=int, default=2500, help="synthetic validation soundscapes"
    )
    part = p.add_mutually_exclusive_group()
    part.add_argument("--only_real", action="store_true", help="only the real (YouTube) part")
    part.add_argument(
        "--only_synth", action="store_true", help="only the soundbank and soundscapes"
    )
    p.add_argument("--jobs", type=int, default=3, help="parallel YouTube downloads")
    p.add_argument("--chunk_size", type=int, default=10, help="clips per YouTube download task")
    p.add_argument("--render_jobs", type=int, default=1, help="scaper rendering processes")
    p.add_argument(
        "--no_resample", dest="resample", action="store_false", help="skip the 16 kHz copies"
    )
    p.add_argument("--seed", type=int, default=2021)
    p.add_argument(
        "--mirror", default="https://zenodo.org", help="Zenodo base URL (tests, mirrors)"
    )
    return p


def main(argv: list[str] | None = None) -> None:
    """Parse options, run every step, print the summary."""
    args = vars(build_parser().parse_args(argv))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sources = ZenodoSources(base_url=args.pop("mirror"))
    config = Dcase2021Config(**args)
    try:
        report = generate_dcase2021(config, sources=sources)
    except (DownloadError, FileNotFoundError) as err:  # names the URL or path, and the reason
        fix = "check the network (or --mirror)" if isinstance(err, DownloadError) else "check the paths given"
        print(f"error: {err}; {fix}, then run the same command again: finished steps are kept", file=sys.stderr)
        raise SystemExit(2) from None
    print(format_report(config, report))


if __name__ == "__main__":
    main()
