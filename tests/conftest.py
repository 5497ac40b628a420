"""Shared fixtures: small audio folders and tables written at test time."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# two cores: keep torch from oversubscribing when tests run beside data loaders
os.environ.setdefault("OMP_NUM_THREADS", "2")


def pytest_configure(config) -> None:
    """The package's dependency-warning filters, as every command has them: `import desed_task`
    installs them, but pytest imports it while collecting, inside a `catch_warnings` that drops
    them again, so each test would show those warnings (20 LeafSpec ones a run)."""
    from desed_task import warnings_filters

    warnings_filters.install()


def write_wav(path: Path, seconds: float = 10.0, fs: int = 16000, channels: int = 1, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    data = 0.1 * rng.standard_normal((int(seconds * fs), channels)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data if channels > 1 else data[:, 0], fs)
    return path


@pytest.fixture
def saved_figures(monkeypatch) -> list:
    """The matplotlib figures a command saves during the test, in order (savefig still writes)."""
    import matplotlib.figure

    figures = []
    save = matplotlib.figure.Figure.savefig

    def keep(figure, *args, **kwargs):
        figures.append(figure)
        return save(figure, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    return figures


@pytest.fixture
def shared_reference() -> Path:
    ref = SHARED / "reference"
    if not ref.is_dir():
        pytest.skip("../shared/reference is absent (reference data is only beside the repo in CI)")
    return ref


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """The tiny demo dataset of `pipeline.TINY_SIZES`, built once per session (read only: runs
    on it write under their own log dirs; the 16 kHz dev-test folder is written once, alike)."""
    from pipeline import tiny_config

    from desed_task.training.cli import ensure_demo_data

    root = tmp_path_factory.mktemp("tiny") / "demo"
    ensure_demo_data(tiny_config(root, root.parent / "exp"))
    return root


class Records(logging.Handler):
    """Every log record and warning of a block, as text."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(scope="session")
def trained(tiny_data, tmp_path_factory) -> tuple[Path, list[str]]:
    """A checkpoint trained by train_sed.py on the tiny demo (one epoch of every batch), its
    LOG_DIR/best.ckpt link, and what the run logged and warned."""
    from pipeline import run_cli, tiny_config, write_config

    tmp = tmp_path_factory.mktemp("trained")
    conf = write_config(tiny_config(tiny_data, tmp / "exp", n_epochs=1, max_steps_per_epoch=None), tmp / "tiny.yaml")
    records, root, ours = Records(), logging.getLogger(), logging.getLogger("desed_task")
    root.addHandler(records)
    level = ours.level
    ours.setLevel(logging.INFO)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run_cli(conf)
    finally:
        root.removeHandler(records)
        ours.setLevel(level)
    return tmp / "exp" / "best.ckpt", records.lines + [str(w.message) for w in caught]


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint of the tiny pipeline network (random weights) in train_sed.py's layout."""
    import torch
    from pipeline import tiny_detector_config

    from desed_task.nnet import build_network
    from desed_task.training.mean_teacher import MeanTeacher

    torch.manual_seed(0)
    config = tiny_detector_config()
    module = MeanTeacher(config, build_network(config["net"]), [f"c{i}" for i in range(10)], 0.064)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    torch.save({"hyper_parameters": config, "state_dict": module.state_dict()}, path)
    return path
