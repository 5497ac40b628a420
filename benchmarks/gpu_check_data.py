"""The data and configs of `benchmarks/gpu_check.sh`: a small demo-shaped dataset written without
scaper, and confs/sed.yaml and confs/pretrained.yaml pointed at it.

    python benchmarks/gpu_check_data.py --work DIR [--tiny] [--data DEMO_ROOT]

Writes, under DIR:

- ``data/``: the folders and tables of the demo dataset (`confs/demo.yaml`'s ``data:`` paths under
  ``data/demo``), 10 s clips at 16 kHz: background noise and 0-3 events per clip, each event a
  class's own tone pattern, with their strong (synthetic sets, dev-test), weak and duration
  tables. The dev-test is written at 16 kHz (``validation_16k``: no resampling). It needs only
  numpy, pandas and soundfile (the machine of a GPU check may have neither scaper nor jams, which
  ``python -m desed_task.data_generation.demo`` needs). With ``--data DEMO_ROOT`` an existing demo
  dataset is used instead (its 44.1 kHz dev-test is resampled by the first run, as in the demo).
- ``sed.yaml``: confs/sed.yaml (the 2021 network and batch [12, 12, 24]) on that data;
- ``pretrained.yaml``: confs/pretrained.yaml (the 2023 CRNN, [24, 24, 48]) on that data, fed the
  embeddings of the stand-in BEATs (`desed_task.embeddings.standin`, written at
  ``beats_standin.pt``: random weights, 48 channels, as confs/demo_pretrained.yaml), extracted
  under ``embeddings/`` by ``python -m desed_task.embeddings --conf_file``;
- with ``--tiny`` (the CPU check): the networks of the tests (filters [4, 8, ...], 8 GRU cells),
  batches [2, 2, 4], fewer clips.

Training reads no more than the configs say: ``training.num_workers`` 0 (the dataset is small).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from desed_task.data.classes import DESED_CLASSES  # noqa: E402

FS = 16000
SECONDS = 10.0
DEMO_PREFIX = "data/demo/"
# clips per set: enough for one batch of each config ([24, 24, 48] for pretrained.yaml; the
# weak set keeps 90 % for training) and for the tiny batch [2, 2, 4]
SIZES = {"synthetic_train": 26, "weak": 28, "unlabel_in_domain": 50, "synthetic_validation": 6,
         "validation_16k": 6, "eval": 2}
TINY_SIZES = {"synthetic_train": 4, "weak": 4, "unlabel_in_domain": 4, "synthetic_validation": 2,
              "validation_16k": 2, "eval": 1}
TINY_NET = {"nb_filters": [4, 8, 8, 8, 8, 8, 8], "n_RNN_cell": 8}
STANDIN_WIDTH = 48  # channels of the stand-in BEATs' embeddings


def _event_audio(rng: np.random.Generator, label_index: int, n: int) -> np.ndarray:
    """An event of class `label_index`: its own base frequency (150 Hz steps) with harmonics,
    amplitude-modulated at a class rate; float32 (n,)."""
    t = np.arange(n) / FS
    base = 200.0 + 150.0 * label_index * rng.uniform(0.95, 1.05)
    tone = sum(np.sin(2 * np.pi * k * base * t) / k for k in (1, 2, 3))
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * (2.0 + label_index) * t)
    ramp = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.01 * FS))
    return (0.2 * tone * envelope * ramp).astype(np.float32)


def _clip(rng: np.random.Generator, min_events: int, max_events: int) -> tuple[np.ndarray, list]:
    """A 10 s clip and its events [(onset s, offset s, class)]."""
    n = int(SECONDS * FS)
    audio = (0.01 * rng.standard_normal(n)).astype(np.float32)
    events = []
    for _ in range(int(rng.integers(min_events, max_events + 1))):
        label = int(rng.integers(len(DESED_CLASSES)))
        duration = rng.uniform(0.5, 4.0)
        onset = rng.uniform(0.0, SECONDS - duration)
        start, stop = int(onset * FS), int((onset + duration) * FS)
        audio[start:stop] += _event_audio(rng, label, stop - start)
        events.append((round(onset, 3), round(onset + duration, 3), DESED_CLASSES[label]))
    return np.clip(audio, -1, 1), sorted(events)


def _write_set(folder: Path, n_clips: int, rng: np.random.Generator, min_events: int) -> dict[str, list]:
    folder.mkdir(parents=True, exist_ok=True)
    events = {}
    for i in range(n_clips):
        name = f"{i}.wav"
        audio, events[name] = _clip(rng, min_events, 3)
        sf.write(folder / name, audio, FS, subtype="PCM_16")
    return events


def _strong_tsv(events: dict[str, list], path: Path) -> None:
    rows = [(name, on, off, label) for name, evs in events.items() for on, off, label in evs]
    rows += [(name, None, None, None) for name, evs in events.items() if not evs]  # kept, as DESED
    _tsv(pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"]), path)


def _tsv(table: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, sep="\t", index=False, float_format="%.3f")


def build_dataset(root: Path, sizes: dict[str, int], seed: int = 0) -> Path:
    """The demo layout under `root` (the paths of confs/demo.yaml's ``data:`` under ``data/demo``)."""
    rng = np.random.default_rng(seed)
    audio, meta = root / "audio", root / "metadata"
    synth = _write_set(audio / "train" / "synthetic_train", sizes["synthetic_train"], rng, 1)
    _strong_tsv(synth, meta / "train" / "synthetic_train.tsv")
    weak = _write_set(audio / "train" / "weak", sizes["weak"], rng, 1)
    _tsv(pd.DataFrame([(n, ",".join(sorted({e[2] for e in evs}))) for n, evs in weak.items()],
                      columns=["filename", "event_labels"]), meta / "train" / "weak.tsv")
    _write_set(audio / "train" / "unlabel_in_domain", sizes["unlabel_in_domain"], rng, 0)
    for folder, name in (("synthetic_validation", "synthetic_validation"), ("validation_16k", "validation")):
        events = _write_set(audio / "validation" / folder, sizes[folder], rng, 1 if name != "validation" else 0)
        _strong_tsv(events, meta / "validation" / f"{name}.tsv")
        _tsv(pd.DataFrame([(n, SECONDS) for n in events], columns=["filename", "duration"]),
             meta / "validation" / f"{name}_durations.tsv")
    _write_set(audio / "eval", sizes["eval"], rng, 0)
    return root


def demo_data_section(root: Path) -> dict:
    """confs/demo.yaml's ``data:`` section with its ``data/demo/`` paths under `root`."""
    data = yaml.safe_load((REPO / "confs" / "demo.yaml").read_text())["data"]
    return {k: str(root / v[len(DEMO_PREFIX):]) if isinstance(v, str) and v.startswith(DEMO_PREFIX) else v
            for k, v in data.items()}


def check_config(name: str, data: dict, work: Path, tiny: bool) -> dict:
    """confs/`name` with the demo data section, and for the 2023 CRNN the stand-in's embeddings."""
    config = yaml.safe_load((REPO / "confs" / name).read_text())
    config["data"] = data
    config["training"]["num_workers"] = 0
    config["scaler"]["savepath"] = str(work / "scaler.ckpt")
    if tiny:
        config["net"].update(TINY_NET)
        config["training"].update(batch_size=[2, 2, 4], batch_size_val=4)
    if config["net"].get("use_embeddings"):
        config["pretrained"].update(checkpoint=str(work / "beats_standin.pt"),
                                    extracted_embeddings_dir=str(work / "embeddings"))
        config["net"]["embedding_size"] = STANDIN_WIDTH
    return config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="output folder")
    parser.add_argument("--tiny", action="store_true", help="tiny networks, batches and sets (the CPU check)")
    parser.add_argument("--data", type=Path, help="an existing demo dataset (python -m desed_task.data_generation.demo)")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.data:
        if not (args.data / "metadata" / "train" / "synthetic_train.tsv").is_file():
            parser.exit(2, f"error: --data {args.data}: not a demo dataset (no metadata/train/synthetic_train.tsv); "
                           "build one with python -m desed_task.data_generation.demo --root DIR\n")
        root = args.data.resolve()
    else:
        root = build_dataset(args.work / "data", TINY_SIZES if args.tiny else SIZES)
    data = demo_data_section(root)
    for name in ("sed.yaml", "pretrained.yaml"):
        (args.work / name).write_text(yaml.safe_dump(check_config(name, data, args.work, args.tiny), sort_keys=False))
    from desed_task.embeddings.standin import write_standin_beats

    write_standin_beats(args.work / "beats_standin.pt")
    print(f"data: {root} ({'given' if args.data else 'written without scaper'}); configs: "
          f"{args.work / 'sed.yaml'}, {args.work / 'pretrained.yaml'}; stand-in BEATs: {args.work / 'beats_standin.pt'}")


if __name__ == "__main__":
    main()
