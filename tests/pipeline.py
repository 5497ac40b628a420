"""A tiny demo dataset and config for tests that run the whole training pipeline."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

TINY_SIZES = {
    "synthetic_train": 12,
    "weak": 12,
    "unlabel_in_domain": 12,
    "synthetic_validation": 6,
    "validation": 8,
    "eval": 3,
    "clips_per_class": [2, 1],
    "backgrounds_per_kind": [1, 1],
}


def tiny_config(data_root: Path, log_dir: Path, **training) -> dict:
    """confs/demo.yaml on a tiny dataset, with a tiny network and a few steps."""
    config = yaml.safe_load((REPO / "confs" / "demo.yaml").read_text())
    config = copy.deepcopy(config)
    config["demo"] = {"root": str(data_root), "seed": 0, "log_dir": str(log_dir), "sizes": TINY_SIZES}
    for key, value in config["data"].items():
        if isinstance(value, str) and value.startswith("data/demo/"):
            config["data"][key] = str(data_root / value[len("data/demo/"):])
    config["training"].update(
        {"batch_size": [2, 2, 4], "batch_size_val": 4, "n_epochs": 2, "n_epochs_warmup": 1,
         "max_steps_per_epoch": 2, "num_workers": 0, "early_stop_patience": 100}
    )
    config["training"].update(training)
    config["net"].update({"nb_filters": [4, 8, 8, 8, 8, 8, 8], "n_RNN_cell": 8})
    return config


def write_config(config: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def run_cli(conf: Path, *extra: str) -> dict:
    """`train_sed.py --conf_file CONF --gpus 0 EXTRA...` in this process; the test results."""
    from desed_task.training.cli import build_parser, run

    args = build_parser("test", str(conf), "unused").parse_args(["--conf_file", str(conf), "--gpus", "0", *extra])
    return run(args, "unused")


STANDIN_WIDTH = 48  # channels of the stand-in BEATs (desed_task.embeddings.standin)


def tiny_pretrained_config(data_root: Path, root: Path, **training) -> dict:
    """`tiny_config` of the 2023 CRNN: frame embeddings of the stand-in BEATs (written at
    ``root/beats.pt`` by demo.beats_standin) pooled into the CRNN, extracted under ``root/emb``
    by the first run."""
    config = tiny_config(data_root, root / "exp", **training)
    config["net"].update(use_embeddings=True, embedding_size=STANDIN_WIDTH, embedding_type="frame",
                         aggregation_type="pool1d")
    config["pretrained"] = {"model": "beats", "e2e": False, "freezed": True,
                            "extracted_embeddings_dir": str(root / "emb"), "checkpoint": str(root / "beats.pt")}
    config["demo"]["beats_standin"] = True
    return config


def tiny_detector_config() -> dict:
    """tiny_config without data: the network, features and decoding of a tiny checkpoint."""
    config = tiny_config(Path("/nonexistent"), Path("/nonexistent"))
    config.pop("demo")
    return config
