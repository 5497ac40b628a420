"""The TensorFlow separation path on the real TDCN++ graph: run_separation.py separates a folder
with the golden of ../shared/reference/tdcnpp2021 (Google's own graph-building code, random
weights), and every written file holds what TensorFlow computed for that clip (io.npz)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

pytest.importorskip("tensorflow", reason="the TensorFlow separation path needs TensorFlow (the separation extra)")

from desed_task.config import SCHEMA  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO.parent / "shared" / "reference" / "tdcnpp2021"
FS = 16000
N_SOURCES = 8


def load_run_separation():
    spec = importlib.util.spec_from_file_location("run_separation", REPO / "run_separation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_run_separation_on_the_real_graph_writes_tensorflows_sources(tmp_path: Path) -> None:
    if not (GOLDEN / "io.npz").is_file():
        pytest.skip("../shared/reference/tdcnpp2021 is absent (reference data is only beside the repo in CI)")
    io = np.load(GOLDEN / "io.npz")
    clips = tmp_path / "test_16k"
    names = {"a_10s.wav": 0, "sub/b_odd.wav": 1}  # 160000 and 48123 samples; a subfolder too
    for name, index in names.items():
        (clips / name).parent.mkdir(parents=True, exist_ok=True)
        # float wav: the clip reaches the graph bit for bit as io.npz's input
        sf.write(str(clips / name), io[f"input_{index}"][0, 0], FS, subtype="FLOAT")
    config = yaml.safe_load((REPO / "confs" / "sep+sed.yaml").read_text())
    config["training"].update(sep_graph=str(GOLDEN / "inference.meta"), sep_checkpoint=str(GOLDEN / "model.ckpt-1"))
    if "separation" in SCHEMA:  # where PyTorch is the default backend, ask for TensorFlow's
        config["separation"] = {"backend": "tensorflow"}
    config["data"] = {
        "audio_max_len": 10,
        "fs": FS,
        "net_subsample": 4,
        "test_folder_16k": str(clips),
        "test_folder_sep": str(tmp_path / "test_sep"),
        "test_dur": str(tmp_path / "test_durations.tsv"),
    }
    conf = tmp_path / "sep+sed.yaml"
    conf.write_text(yaml.safe_dump(config))

    assert load_run_separation().main(["--conf_file", str(conf), "--test_only"]) == 0

    written = sorted(p.relative_to(tmp_path / "test_sep").as_posix() for p in (tmp_path / "test_sep").rglob("*.wav"))
    assert written == sorted(names)
    for name, index in names.items():
        info = sf.info(str(tmp_path / "test_sep" / name))
        assert (info.samplerate, info.channels, info.subtype) == (FS, N_SOURCES, "FLOAT")
        sources, _ = sf.read(str(tmp_path / "test_sep" / name), dtype="float32", always_2d=True)
        expected = io[f"output_{index}"][0].T  # (samples, sources), as the file stores them
        assert sources.shape == expected.shape
        # the same graph and weights: only thread scheduling differs (measured 1.5e-7)
        assert float(np.abs(sources - expected).max()) <= 1e-5, name
