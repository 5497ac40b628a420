"""A small synthetic DESED-shaped dataset, built in about a minute, to train and test on.

Layout under ``root`` (``confs/demo.yaml`` points there)::

    root/audio/train/synthetic_train/            root/metadata/train/synthetic_train.tsv   (strong)
    root/audio/train/weak/                       root/metadata/train/weak.tsv              (weak)
    root/audio/train/unlabel_in_domain/          (no metadata)
    root/audio/validation/synthetic_validation/  root/metadata/validation/synthetic_validation.tsv
                                                 root/metadata/validation/synthetic_validation_durations.tsv
    root/audio/validation/validation_44k/        root/metadata/validation/validation.tsv
         (44.1 kHz, the "dev-test" set)          root/metadata/validation/validation_durations.tsv
    root/audio/eval/                             (no metadata)
    root/jams/<set>/<clip>.jams                  scaper JAMS of every clip
    root/soundbank/{train,heldout}/{foreground,background}/...   the procedural soundbank (16 kHz)
    root/.complete                               JSON of the build parameters, written last

All clips are 10 s, 16 kHz 16-bit wav, except the dev-test set (44.1 kHz, so that the training
script's resampling path runs). Train sets (synthetic, weak, unlabelled) are mixed from the
``train`` soundbank, validation, dev-test and eval from the ``heldout`` one. Strong TSVs list
``filename onset offset event_label`` (a clip without events keeps one row with blank fields);
``weak.tsv`` lists ``filename event_labels`` (comma-separated). Same seed, same bytes.

The build happens in ``<root>.partial`` next to ``root`` and is renamed at the end: an
interrupted build leaves no half-built ``root``, and a re-run starts the partial build again
(clips already rendered in it are kept). ``root/.complete`` with the same parameters: nothing to do.

Command line: ``python -m desed_task.data_generation.demo --root data/demo``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
import zlib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from desed_task.command_line import run_command
from desed_task.config import ConfigError
from desed_task.data.classes import DESED_CLASSES
from desed_task.data_generation.demo.soundbank import synthesize_soundbank
from desed_task.data_generation.scaper.annotations import (
    durations_table,
    strong_table,
    weak_table,
    write_tsv,
)
from desed_task.data_generation.scaper.label_samplers import UniformLabelSampler
from desed_task.data_generation.scaper.soundbank import SoundbankIndex
from desed_task.data_generation.scaper.soundscapes import (
    SoundscapeParams,
    plan_soundscapes,
    render_soundscapes,
)
from desed_task.sets import LabelType, SetSpec, demo_sets

logger = logging.getLogger(__name__)

DEMO_SAMPLE_RATE = 16000
DEV_TEST_SAMPLE_RATE = 44100
COMPLETE_MARKER = ".complete"


@dataclass(frozen=True)
class DemoSizes:
    """Clips per set (a field per ``demo_name`` of `desed_task.sets`, in its order), and
    soundbank files per class / background kind (train, heldout)."""

    synthetic_train: int = 400
    weak: int = 200
    unlabel_in_domain: int = 400
    synthetic_validation: int = 100
    validation: int = 150
    eval: int = 20
    clips_per_class: tuple[int, int] = (8, 4)
    backgrounds_per_kind: tuple[int, int] = (3, 2)


@dataclass(frozen=True)
class DemoLayout:
    """Paths of the demo dataset under ``root``."""

    root: Path

    @property
    def audio(self) -> Path:
        return self.root / "audio"

    @property
    def metadata(self) -> Path:
        return self.root / "metadata"

    @property
    def synthetic_train(self) -> Path:
        return self.audio / "train" / "synthetic_train"

    @property
    def synthetic_train_tsv(self) -> Path:
        return self.metadata / "train" / "synthetic_train.tsv"

    @property
    def weak(self) -> Path:
        return self.audio / "train" / "weak"

    @property
    def weak_tsv(self) -> Path:
        return self.metadata / "train" / "weak.tsv"

    @property
    def unlabel_in_domain(self) -> Path:
        return self.audio / "train" / "unlabel_in_domain"

    @property
    def synthetic_validation(self) -> Path:
        return self.audio / "validation" / "synthetic_validation"

    @property
    def synthetic_validation_tsv(self) -> Path:
        return self.metadata / "validation" / "synthetic_validation.tsv"

    @property
    def synthetic_validation_durations(self) -> Path:
        return self.metadata / "validation" / "synthetic_validation_durations.tsv"

    @property
    def validation(self) -> Path:
        """The dev-test audio, 44.1 kHz."""
        return self.audio / "validation" / "validation_44k"

    @property
    def validation_tsv(self) -> Path:
        return self.metadata / "validation" / "validation.tsv"

    @property
    def validation_durations(self) -> Path:
        return self.metadata / "validation" / "validation_durations.tsv"

    @property
    def eval(self) -> Path:
        return self.audio / "eval"

    @property
    def jams(self) -> Path:
        return self.root / "jams"

    @property
    def soundbank(self) -> Path:
        return self.root / "soundbank"

    @property
    def complete_marker(self) -> Path:
        return self.root / COMPLETE_MARKER

    def as_dict(self) -> dict[str, Path]:
        """Every named path, e.g. for a config file."""
        names = [n for n, v in vars(type(self)).items() if isinstance(v, property)]
        return {name: getattr(self, name) for name in names}


MAX_EVENTS = 3
"""Events per demo clip, at most."""
EVENT_FREE_SETS = ("unlabeled", "test", "eval")
"""Sets (of `desed_task.sets`) whose demo clips may hold no event, as real recordings do; the
clips of the others hold at least one."""
SAMPLE_RATES = {"test": DEV_TEST_SAMPLE_RATE}
"""Sets not written at DEMO_SAMPLE_RATE: the dev-test, so that training's resampling runs."""


def demo_params(sample_rate: int = DEMO_SAMPLE_RATE) -> SoundscapeParams:
    """The demo's soundscape parameters: the 2021 ones without pitch shift and reverb (speed)."""
    return SoundscapeParams(sample_rate=sample_rate, pitch_shift_semitones=None, reverb=None)


def _sub_seed(seed: int, name: str) -> int:
    """A seed per named part, stable across Python runs and machines."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % 2**32


def _build_info(seed: int, sizes: DemoSizes) -> dict:
    return {"seed": seed, "sizes": asdict(sizes), "params": asdict(demo_params()), "version": 1}


def _is_complete(root: Path, info: dict) -> bool:
    marker = root / COMPLETE_MARKER
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text())["build"] == json.loads(json.dumps(info))
    except (ValueError, KeyError):
        return False


def _build_set(spec: SetSpec, layout: DemoLayout, sizes: DemoSizes, seed: int, jobs: int) -> None:
    """Render one set of the table (`desed_task.sets`) and write its tables: the training sets
    from the ``train`` soundbank, the others from the ``heldout`` one; its folder, tables, size
    and seed are named by its ``demo_name`` (``DemoLayout`` and ``DemoSizes`` attributes)."""
    name = spec.demo_name
    split_dir = layout.soundbank / ("train" if spec.batch_part is not None else "heldout")
    soundbank = SoundbankIndex.scan(split_dir / "foreground", split_dir / "background")
    params = demo_params(SAMPLE_RATES.get(spec.name, DEMO_SAMPLE_RATE))
    sampler = UniformLabelSampler(DESED_CLASSES, 0 if spec.name in EVENT_FREE_SETS else 1, MAX_EVENTS)
    plans = plan_soundscapes(getattr(sizes, name), soundbank, sampler, params, _sub_seed(seed, name))
    clip_events = render_soundscapes(
        plans,
        soundbank,
        params,
        getattr(layout, name),
        jams_dir=layout.jams / name,
        jobs=jobs,
        description=name,
    )
    if spec.tsv:
        table = strong_table if spec.label is LabelType.STRONG else weak_table
        write_tsv(table(clip_events), getattr(layout, f"{name}_tsv"))
    if spec.durations:
        durations = {filename: params.duration_s for filename in clip_events}
        write_tsv(durations_table(durations), getattr(layout, f"{name}_durations"))


def build_demo_dataset(
    root: Path, seed: int = 0, sizes: DemoSizes = DemoSizes(), jobs: int = 2
) -> DemoLayout:
    """Build the demo dataset under ``root`` (see the module docstring for the layout).

    Args:
        root: output folder; built as ``<root>.partial`` then renamed.
        seed: seed of the soundbank and of every soundscape.
        sizes: clips per set and soundbank sizes.
        jobs: worker processes for rendering.

    Returns:
        The layout of ``root``. Nothing is done if ``root/.complete`` records the same build.
    """
    root = Path(root)
    info = _build_info(seed, sizes)
    if _is_complete(root, info):
        logger.info("demo dataset already complete in %s (seed %d), nothing to do", root, seed)
        return DemoLayout(root)
    start = time.perf_counter()
    partial = root.with_name(root.name + ".partial")
    if partial.exists() and not _same_partial_build(partial, info):
        shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)
    (partial / ".build.json").write_text(json.dumps(info, indent=2))
    layout = DemoLayout(partial)

    for split, n_clips, n_backgrounds, sub in (
        ("train", sizes.clips_per_class[0], sizes.backgrounds_per_kind[0], "soundbank/train"),
        ("heldout", sizes.clips_per_class[1], sizes.backgrounds_per_kind[1], "soundbank/heldout"),
    ):
        done = partial / f".{split}_soundbank.done"
        if not done.exists():
            logger.info("synthesising the %s soundbank", split)
            shutil.rmtree(partial / sub, ignore_errors=True)
            synthesize_soundbank(partial / sub, _sub_seed(seed, sub), n_clips, n_backgrounds)
            done.touch()
    for spec in demo_sets():
        _build_set(spec, layout, sizes, seed, jobs)

    for done in partial.glob(".*.done"):
        done.unlink()
    (partial / ".build.json").unlink()
    elapsed = time.perf_counter() - start
    marker = {"build": info, "build_seconds": round(elapsed, 1)}
    (partial / COMPLETE_MARKER).write_text(json.dumps(marker, indent=2))
    if root.exists():  # an older or different build: replace it
        stale = root.with_name(root.name + ".stale")
        shutil.rmtree(stale, ignore_errors=True)
        root.rename(stale)
        partial.rename(root)
        shutil.rmtree(stale)
    else:
        partial.rename(root)
    logger.info("demo dataset built in %s in %.1f s", root, elapsed)
    return DemoLayout(root)


def ensure_demo_dataset(demo: Mapping[str, Any]) -> DemoLayout:
    """Build the demo dataset a config's ``demo:`` section describes, unless it is complete.

    Args:
        demo: ``root`` (output folder), optional ``seed`` (default 0) and ``sizes`` (fields of
            :class:`DemoSizes`).

    Raises:
        ConfigError: ``sizes`` has a key that is not a field of :class:`DemoSizes`.
    """
    given = dict(demo.get("sizes") or {})
    unknown = sorted(set(given) - {f.name for f in fields(DemoSizes)})
    if unknown:
        raise ConfigError(
            f"demo.sizes: unknown key(s) {', '.join(unknown)}; the sizes are "
            f"{', '.join(f.name for f in fields(DemoSizes))}"
        )
    sizes = DemoSizes(**given)
    return build_demo_dataset(Path(demo["root"]), seed=int(demo.get("seed", 0)), sizes=sizes)


def _same_partial_build(partial: Path, info: dict) -> bool:
    build_file = partial / ".build.json"
    try:
        return json.loads(build_file.read_text()) == json.loads(json.dumps(info))
    except (OSError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    """Command line entry: ``python -m desed_task.data_generation.demo --root data/demo``; the
    exit status (`run_command`)."""
    parser = argparse.ArgumentParser(
        prog="python -m desed_task.data_generation.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--root", type=Path, default=Path("data/demo"), help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="rendering processes")
    defaults = DemoSizes()
    names = [spec.demo_name for spec in demo_sets()]
    for name in names:
        parser.add_argument(f"--n_{name}", type=int, default=getattr(defaults, name), help="clips")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sizes = DemoSizes(**{name: getattr(args, f"n_{name}") for name in names})

    def build() -> None:
        layout = build_demo_dataset(args.root, seed=args.seed, sizes=sizes, jobs=args.jobs)
        for name, path in layout.as_dict().items():
            print(f"{name:32s} {path}")

    return run_command(build)
