"""`scaler.statistic: dataset` end to end on the tiny demo dataset: fitted once before training
(2021), kept in the checkpoints and at `scaler.savepath`, reused without refitting by
--test_from_checkpoint and --resume_from_checkpoint."""

from __future__ import annotations

import pytest
import torch
from pipeline import run_cli as _run
from pipeline import tiny_config, write_config

from desed_task.features.scaler import TorchScaler
from desed_task.training.cli import main

pytestmark = pytest.mark.slow


def _no_refit(monkeypatch) -> None:
    def refit(*args, **kwargs):
        raise AssertionError("the dataset scaler was fitted again")

    monkeypatch.setattr(TorchScaler, "fit", refit)


def test_dataset_scaler_is_fitted_once_saved_and_reused(tiny_data, tmp_path, monkeypatch):
    log_dir, savepath = tmp_path / "exp", tmp_path / "stats" / "scaler.ckpt"
    config = tiny_config(tiny_data, log_dir, n_epochs=1, n_test_thresholds=5)
    config["scaler"] = {"statistic": "dataset", "normtype": "standard", "dims": [1, 2], "savepath": str(savepath)}
    conf = write_config(config, tmp_path / "tiny.yaml")
    fits = []
    original_fit = TorchScaler.fit
    monkeypatch.setattr(TorchScaler, "fit", lambda self, *a, **k: fits.append(1) or original_fit(self, *a, **k))

    results = _run(conf)

    assert len(fits) == 1
    state = torch.load(log_dir / "best.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    saved = torch.load(savepath, weights_only=True)
    for name in ("mean", "mean_squared"):
        assert state[f"scaler.{name}"].shape == (1, 1, 1)
        assert torch.equal(state[f"scaler.{name}"], saved[name])
    std = (saved["mean_squared"] - saved["mean"] ** 2).sqrt().item()
    assert -50 < saved["mean"].item() < 80 and std > 1  # statistics of dB log-mels

    savepath.unlink()  # the test must take the statistics from the checkpoint
    _no_refit(monkeypatch)
    again = _run(conf, "--test_from_checkpoint", str(log_dir / "best.ckpt"), "--log_dir", str(tmp_path / "retest"))
    for model in results:
        for key, value in results[model].items():
            assert again[model][key] == pytest.approx(value, abs=1e-9), (model, key)

    config["training"]["n_epochs"] = 2
    write_config(config, conf)
    last = log_dir / "version_0" / "checkpoints" / "last.ckpt"
    _run(conf, "--resume_from_checkpoint", str(last))
    resumed = torch.load(log_dir / "version_1" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert resumed["global_step"] == 4  # two epochs of two steps: the second one was run
    assert torch.equal(resumed["state_dict"]["scaler.mean"], state["scaler.mean"])


def test_dataset_scaler_without_statistics_is_a_clear_error(tiny_data, tmp_path, capsys):
    """A checkpoint without scaler statistics, tested with statistic: dataset and no file."""
    from desed_task.nnet import build_network
    from desed_task.training.mean_teacher import MeanTeacher

    config = tiny_config(tiny_data, tmp_path / "exp")
    config["scaler"] = {"statistic": "dataset", "normtype": "standard", "dims": [1, 2],
                        "savepath": str(tmp_path / "absent.ckpt")}
    conf = write_config(config, tmp_path / "tiny.yaml")
    module = MeanTeacher(config, build_network(config["net"]), [str(i) for i in range(10)], 0.064)
    state = {k: v for k, v in module.state_dict().items() if not k.startswith("scaler.")}
    torch.save({"state_dict": state, "hyper_parameters": config}, tmp_path / "unfitted.ckpt")
    with pytest.raises(SystemExit) as exit_info:
        main("test", str(conf), "unused", argv=["--conf_file", str(conf), "--gpus", "0", "--test_from_checkpoint",
                                               str(tmp_path / "unfitted.ckpt"), "--log_dir", str(tmp_path / "t")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "error: scaler.statistic is dataset but the checkpoint holds no scaler statistics" in error
    assert "Traceback" not in error
