"""SSEP + SED fine-tuning: the ensemble student built from a pre-trained SED checkpoint, a short
fine-tuning on separated sources (train, validate, test), the same metrics again with
--test_from_checkpoint, --eval_from_checkpoint, and the frozen parts untouched by training."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from pipeline import tiny_config

from desed_task.checkpoints import CheckpointError, load_checkpoint
from desed_task.config import ConfigError, validate_config
from desed_task.features.mel import log_mel
from desed_task.nnet import build_network
from desed_task.nnet.ensemble import SeparatedEnsemble
from desed_task.separation import separate_folder
from desed_task.separation.jobs import prepare_16k, separation_jobs
from desed_task.training.cli import build_parser, ensure_demo_data, run
from desed_task.training.finetune import build_ensemble_student

N_SOURCES = 3
SEP_SETS = ("synth", "weak", "unlabeled", "synth_val", "test", "eval")


class GainSeparator:
    """A numpy stand-in for the separation model: the mixture times fixed gains that add up to
    one (mixture consistency), one channel per source."""

    n_sources = N_SOURCES

    def separate(self, waveform: np.ndarray) -> np.ndarray:
        gains = np.array([0.6, 0.3, 0.1], dtype=np.float32)[:, None]
        return gains * waveform[None]


def sep_config(data_root: Path, log_dir: Path, sed_checkpoint: Path) -> dict:
    """tiny_config with `_sep` folders, the pre-trained checkpoint and the fine-tuning switches."""
    # one loader worker: the trainer then keeps one intra-op thread, which stays fast when the
    # two cores are shared (two threads on a busy core spin, seen 30x slower)
    config = tiny_config(
        data_root, log_dir, n_epochs=1, mixup=None, gradient_clip=5.0, n_test_thresholds=5, num_workers=1
    )
    for name in SEP_SETS:
        config["data"][f"{name}_folder_sep"] = config["data"][f"{name}_folder"].rstrip("/") + "_sep/"
    config["training"].update(sed_checkpoint=str(sed_checkpoint), sed_model="teacher")
    return validate_config(config, "sep_config")


def pretrained_checkpoint(path: Path, config: dict) -> tuple[Path, dict]:
    """A train_sed.py-like checkpoint: different student and teacher CRNNs and the config."""
    torch.manual_seed(1)
    student, teacher = build_network(config["net"]), build_network(config["net"])
    with torch.no_grad():  # non-trivial batch norm statistics, as after training
        for model in (student, teacher):
            for name, buffer in model.named_buffers():
                if name.endswith("running_mean"):
                    buffer.uniform_(-0.3, 0.3)
            # low frame probabilities, as for a trained model on mostly silent frames: the
            # separated branch sums its sources and clamps at 1, where gradients stop
            model.dense.bias.fill_(-3.0)
    state = {f"sed_student.{k}": v for k, v in student.state_dict().items()}
    state.update({f"sed_teacher.{k}": v for k, v in teacher.state_dict().items()})
    torch.save({"state_dict": state, "hyper_parameters": copy.deepcopy(config)}, path)
    return path, teacher.state_dict()


@pytest.fixture(scope="module")
def separated_data(tmp_path_factory) -> Path:
    """The tiny demo dataset, with its `_sep` folders written by `separate_folder`."""
    root = tmp_path_factory.mktemp("tiny_sep") / "demo"
    config = sep_config(root, root.parent / "exp", root.parent / "unused.ckpt")
    ensure_demo_data(config)
    data = {**config["data"], **{f"{n}_folder_16k": config["data"][f"{n}_folder"] for n in SEP_SETS}}
    for job in separation_jobs(data):
        prepare_16k(job)
        report = separate_folder(GainSeparator(), job.audio_16k, job.separated, progress=False)
        assert not report.failed
    return root


def write_yaml(config: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def finetune(conf: Path, *extra: str) -> dict:
    args = build_parser("test", str(conf), "unused").parse_args(["--conf_file", str(conf), "--gpus", "0", *extra])
    return run(args, "unused", build_student=build_ensemble_student, separated_sources=True)


# q0 of 2021's finetune_on_separated.py for seed 42 and the tiny network: seeded as its
# __main__, then CRNN(**sed_yaml["net"]), CRNN(**config["net"], freeze_bn=True), EnsembleModel
# (torch.rand(1)), run with the 2021 code (the 2021 recipe copy of the oracle2021 harness) and torch 2.13
Q0_2021_TINY_NET_SEED_42 = 0.625224769115448


@pytest.mark.slow
def test_finetune_trains_tests_and_retests_with_frozen_parts_intact(separated_data, tmp_path, caplog):
    log_dir = tmp_path / "exp"
    config = sep_config(separated_data, log_dir, tmp_path / "sed.ckpt")
    pretrained, teacher_state = pretrained_checkpoint(tmp_path / "sed.ckpt", config)
    config["net"]["dropout"] = 0.0  # replaced by the checkpoint's network configuration
    conf = write_yaml(config, tmp_path / "sep.yaml")

    with caplog.at_level("INFO", logger="desed_task.training.finetune"):
        results = finetune(conf)
    q0 = [r.args[0] for r in caplog.records if r.msg.startswith("ensemble weight q starts")]
    assert config["training"]["seed"] == 42 and q0 == [pytest.approx(Q0_2021_TINY_NET_SEED_42, abs=1e-7)]

    assert set(results) == {"student", "teacher"} and "psds1" in results["student"]
    best = log_dir / "best.ckpt"
    assert (log_dir / "version_0" / "metrics_test" / "summary.md").is_file()
    tuned = load_checkpoint(best)
    assert tuned["hyper_parameters"]["net"] == load_checkpoint(pretrained)["hyper_parameters"]["net"]
    state = tuned["state_dict"]
    for model in ("sed_student", "sed_teacher"):
        for key, value in teacher_state.items():  # the mixture copy: the pre-trained teacher
            assert torch.equal(state[f"{model}.monaural_model.{key}"], value), (model, key)
            if "batch_norm" in key or key.endswith(("running_mean", "running_var")):
                assert torch.equal(state[f"{model}.multisrc_model.{key}"], value), (model, key)
    conv = next(k for k in teacher_state if k.startswith("cnn.") and k.endswith("weight") and "conv" in k)
    assert not torch.equal(state[f"sed_student.multisrc_model.{conv}"], teacher_state[conv])
    assert state["sed_student.q"].shape == (1,)

    again = finetune(conf, "--test_from_checkpoint", str(best), "--log_dir", str(tmp_path / "retest"))
    for model in results:
        for key, value in results[model].items():
            assert again[model][key] == pytest.approx(value, abs=1e-9), (model, key)

    finetune(conf, "--eval_from_checkpoint", str(best), "--log_dir", str(tmp_path / "eval"))
    out = tmp_path / "eval" / "version_0" / "metrics_eval" / "teacher"
    assert (out / "predictions_05_teacher.tsv").is_file() and list((out / "scores" / "raw").glob("*.tsv"))


def test_builder_loads_the_chosen_network_into_both_copies(tmp_path):
    config = sep_config(tmp_path / "demo", tmp_path / "exp", tmp_path / "sed.ckpt")
    path, teacher_state = pretrained_checkpoint(tmp_path / "sed.ckpt", config)
    student_state = {k[len("sed_student."):]: v for k, v in load_checkpoint(path)["state_dict"].items()
                     if k.startswith("sed_student.")}
    for which, expected in (("teacher", teacher_state), ("student", student_state)):
        config["training"]["sed_model"] = which
        ensemble = build_ensemble_student(config, None)
        assert isinstance(ensemble, SeparatedEnsemble) and ensemble.mixture_first
        for copy_name in ("monaural_model", "multisrc_model"):
            state = getattr(ensemble, copy_name).state_dict()
            assert all(torch.equal(state[k], v) for k, v in expected.items()), (which, copy_name)
        assert not any(p.requires_grad for p in ensemble.monaural_model.parameters())
        bn_params = [p for m in ensemble.multisrc_model.modules()
                     if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for p in m.parameters()]
        assert bn_params and not any(p.requires_grad for p in bn_params)
    features = torch.randn(2, 1 + N_SOURCES, config["feats"]["n_mels"], 64)
    strong, weak = ensemble.eval()(features)
    assert strong.shape == (2, 10, 16) and weak.shape == (2, 10)


def test_builder_for_test_from_checkpoint_does_not_need_the_pretrained_file(tmp_path):
    config = sep_config(tmp_path / "demo", tmp_path / "exp", tmp_path / "absent.ckpt")
    ensemble = build_ensemble_student(config, {"state_dict": {}})
    names = {k.split(".")[0] for k in ensemble.state_dict()}
    assert names == {"q", "multisrc_model", "monaural_model"}


def test_builder_errors_name_the_file_or_key(tmp_path):
    config = sep_config(tmp_path / "demo", tmp_path / "exp", tmp_path / "absent.ckpt")
    with pytest.raises(CheckpointError, match=r"training\.sed_checkpoint: .*absent\.ckpt"):
        build_ensemble_student(config, None)
    config["training"]["sed_checkpoint"] = None
    with pytest.raises(ConfigError, match=r"training\.sed_checkpoint is not set"):
        build_ensemble_student(config, None)
    path, _ = pretrained_checkpoint(tmp_path / "sed.ckpt", config)
    config["training"].update(sed_checkpoint=str(path), sed_model="best")
    with pytest.raises(ConfigError, match="training.sed_model"):
        build_ensemble_student(config, None)
    config["training"].update(sed_model="teacher", sed_yaml=str(tmp_path / "hparams.yaml"))
    wider = {**config["net"], "n_RNN_cell": 16}
    write_yaml({"net": wider, "log_dir": "./exp/2021_baseline"}, tmp_path / "hparams.yaml")
    with pytest.raises(CheckpointError, match=r"sed\.ckpt: the sed_teacher\.\* weights do not fit"):
        build_ensemble_student(config, None)


@pytest.mark.parametrize("mixture_input", ["sum_of_sources", "mixture"])
def test_mixture_branch_input_is_the_log_mel_of_the_summed_source_mels(tmp_path, mixture_input):
    """2021 read only the separated files: the frozen copy saw the log-mel of the sum over
    sources of each source's mel magnitude. `mixture` (not 2021): the real mixture's log-mel."""
    from desed_task.training.mean_teacher import MeanTeacher

    config = sep_config(tmp_path / "demo", tmp_path / "exp", tmp_path / "sed.ckpt")
    if mixture_input != "sum_of_sources":
        config["training"]["ensemble_mixture_input"] = mixture_input
    torch.manual_seed(0)
    module = MeanTeacher(config, build_network(config["net"], ensemble=config["training"]), list("abcdefghij"), 0.064)
    seen = []
    module.sed_student.monaural_model.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    mixture = torch.randn(2, 16000)
    sources = torch.randn(2, N_SOURCES, 16000)  # not adding up to the mixture: the test tells them apart
    audio = torch.cat([mixture[:, None], sources], 1)
    module.eval()
    module.detect(module.mel_magnitudes(audio), module.sed_student)

    if mixture_input == "sum_of_sources":
        mel = module.mel(sources).sum(1)
    else:
        mel = module.mel(mixture)
    want = module.scaler(log_mel(mel))
    assert len(seen) == 1 and seen[0].shape == want.shape
    torch.testing.assert_close(seen[0], want)
