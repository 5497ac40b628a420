"""The 2023 pretrained-embedding baseline end to end on the tiny demo dataset, with the stand-in
BEATs: train_sed.py extracts the embeddings, trains (student and teacher fed the clips'
embeddings, unmixed as in 2023), validates and tests; --test_from_checkpoint and
--eval_from_checkpoint; bad embeddings stop before training; inference scores recordings of
any length with BEATs run window by window, as the test scored the dev-test; the ONNX export
holds fbank, BEATs, mel, scaler and CRNN and equals PyTorch."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import write_wav
from pipeline import run_cli, tiny_pretrained_config, write_config

import desed_task.training.mean_teacher as mean_teacher_module
from desed_task.nnet.CRNN import CRNN
from desed_task.sets import LabelType
from desed_task.training.cli import main as train_main
from desed_task.training.mean_teacher import MeanTeacher

pytestmark = pytest.mark.slow

TRAIN_FILES = {LabelType.STRONG: "synth_train", LabelType.WEAK: "weak_train", LabelType.UNLABELED: "unlabeled_train"}
SETS_2023 = ["devtest", "eval", "synth_train", "synth_val", "unlabeled_train", "weak_train", "weak_val"]


@dataclasses.dataclass
class Step:
    filenames: list[str]
    label_type: list[int]
    embeddings: torch.Tensor  # the batch's, before the step
    mixed: bool = False  # mixup ran in this step
    fed: list[torch.Tensor] = dataclasses.field(default_factory=list)  # embeddings= of each network call


class Recorder:
    """What each training step was given and what it fed its two networks."""

    def __init__(self) -> None:
        self.steps: list[Step] = []

    def patch(self, mp: pytest.MonkeyPatch) -> None:
        step, forward, mixup = MeanTeacher.training_step, CRNN.forward, mean_teacher_module.mixup

        def recorded_step(module, batch, batch_idx):
            self.steps.append(Step(list(batch["filename"]), batch["label_type"].tolist(), batch["embeddings"].clone()))
            return step(module, batch, batch_idx)

        def recorded_forward(network, x, pad_mask=None, embeddings=None):
            if network.training:  # student, then teacher, of a training step
                self.steps[-1].fed.append(embeddings.clone())
            return forward(network, x, pad_mask, embeddings)

        def recorded_mixup(*args, **kwargs):
            self.steps[-1].mixed = True
            return mixup(*args, **kwargs)

        mp.setattr(MeanTeacher, "training_step", recorded_step)
        mp.setattr(CRNN, "forward", recorded_forward)
        mp.setattr(mean_teacher_module, "mixup", recorded_mixup)


@dataclasses.dataclass
class FusedRun:
    root: Path
    conf: Path
    results: dict
    steps: list[Step]

    @property
    def best(self) -> Path:
        return self.root / "exp" / "best.ckpt"

    @property
    def emb(self) -> Path:
        return self.root / "emb" / "beats"


def _train(tiny_data: Path, root: Path, **training) -> FusedRun:
    conf = write_config(tiny_pretrained_config(tiny_data, root, **training), root / "fused.yaml")
    recorder = Recorder()
    with pytest.MonkeyPatch.context() as mp:
        recorder.patch(mp)
        results = run_cli(conf)
    return FusedRun(root, conf, results, recorder.steps)


@pytest.fixture(scope="module")
def fused(tiny_data, tmp_path_factory) -> FusedRun:
    """One tiny training run of the 2023 CRNN (2 epochs of 2 steps), 2023's mixup."""
    return _train(tiny_data, tmp_path_factory.mktemp("fused"), n_epochs=2)


def _rows(path: Path, names: list[str]) -> torch.Tensor:
    with h5py.File(path, "r") as f:
        index = {n.decode(): i for i, n in enumerate(f["filenames"])}
        return torch.stack([torch.from_numpy(f["frame_embeddings"][index[Path(n).stem]]) for n in names])


def test_train_sed_extracts_trains_and_tests_with_embeddings_read_by_clip_name(fused):
    assert sorted(p.stem for p in fused.emb.glob("*.hdf5")) == SETS_2023
    assert (fused.root / "beats.pt").is_file()  # the stand-in, written by demo.beats_standin
    assert set(fused.results) == {"student", "teacher"} and "psds1" in fused.results["student"]
    assert len(fused.steps) == 4 and any(step.mixed for step in fused.steps)
    for step in fused.steps:
        # each clip's embeddings are its row of its set's file
        for kind, file in TRAIN_FILES.items():
            rows = [i for i, t in enumerate(step.label_type) if t == kind]
            expected = _rows(fused.emb / f"{file}.hdf5", [step.filenames[i] for i in rows])
            assert torch.equal(step.embeddings[rows], expected)
        # 2023: student and teacher get the same embeddings, not mixed (mixup mixes the mels)
        assert len(step.fed) == 2
        assert torch.equal(step.fed[0], step.embeddings) and torch.equal(step.fed[1], step.embeddings)


def test_mixup_embeddings_mixes_them_with_the_mels(fused, tiny_data, tmp_path):
    shutil.copytree(fused.root / "emb", tmp_path / "emb")
    shutil.copy(fused.root / "beats.pt", tmp_path / "beats.pt")
    run = _train(tiny_data, tmp_path, n_epochs=2, mixup_embeddings=True)
    mixed = [step for step in run.steps if step.mixed]
    assert mixed and len(mixed) < len(run.steps)
    for step in run.steps:
        assert torch.equal(step.fed[0], step.fed[1])  # the teacher sees what the student sees
        labelled = [i for i, t in enumerate(step.label_type) if t != LabelType.UNLABELED]
        unlabelled = [i for i, t in enumerate(step.label_type) if t == LabelType.UNLABELED]
        assert torch.equal(step.fed[0][unlabelled], step.embeddings[unlabelled])
        assert torch.equal(step.fed[0][labelled], step.embeddings[labelled]) != step.mixed


def test_strong_real_trains_the_strong_set_with_the_synthetic_one(fused, tiny_data, tmp_path, monkeypatch):
    """2023's --strong_real as training.strong_real (the tiny synthetic validation set stands in
    for AudioSet strong): its clips, with their embeddings, share the strong part of batches."""
    from desed_task.data.datasets import ClipSet

    shutil.copytree(fused.root / "emb", tmp_path / "emb")
    shutil.copy(fused.root / "beats.pt", tmp_path / "beats.pt")
    config = tiny_pretrained_config(tiny_data, tmp_path, n_epochs=1, strong_real=True, max_steps_per_epoch=3)
    config["training"]["batch_size"] = [6, 2, 2]
    config["data"].update(strong_folder=config["data"]["synth_val_folder"], strong_tsv=config["data"]["synth_val_tsv"])
    read: list[tuple[str, bool]] = []
    getitem = ClipSet.__getitem__

    def recorded(dataset, index):
        item = getitem(dataset, index)
        read.append((dataset.name, "embeddings" in item))
        return item

    monkeypatch.setattr(ClipSet, "__getitem__", recorded)
    run_cli(write_config(config, tmp_path / "strong.yaml"))
    assert (tmp_path / "emb" / "beats" / "strong_train.hdf5").is_file()
    trained = {name for name, _ in read[: 3 * 10]}  # the 3 training batches (every strong-part clip) come first
    assert {"strong", "synth", "weak", "unlabeled"} <= trained and all(has for _, has in read)


def test_test_and_eval_from_checkpoint(fused, tmp_path):
    again = run_cli(fused.conf, "--test_from_checkpoint", str(fused.best), "--log_dir", str(tmp_path / "retest"))
    for model, values in fused.results.items():
        for key, value in values.items():
            assert again[model][key] == pytest.approx(value, abs=1e-9), (model, key)
    run_cli(fused.conf, "--eval_from_checkpoint", str(fused.best), "--log_dir", str(tmp_path / "eval"))
    out = tmp_path / "eval" / "version_0" / "metrics_eval" / "teacher"
    assert (out / "predictions_05_teacher.tsv").is_file()
    assert len(list((out / "scores" / "raw").glob("*.tsv"))) == 3


def test_eval_pads_short_clips_as_extracted_and_refuses_longer_ones(fused, tiny_data, tmp_path, capsys):
    """An eval clip is scored at its own length, padded to the 10 s its embeddings describe: the
    scores inference gives it (BEATs on the same padded window); a 12 s clip is refused."""
    from desed_task.embeddings.cli import main as embeddings_main
    from desed_task.inference.cli import main as inference_main

    shutil.copytree(fused.root / "emb", tmp_path / "emb")
    folder = tmp_path / "eval"
    write_wav(folder / "short.wav", seconds=6.0, seed=1)
    write_wav(folder / "full.wav", seconds=10.0, seed=2)
    beats, eval_file = str(fused.root / "beats.pt"), tmp_path / "emb" / "beats" / "eval.hdf5"

    def extract() -> None:
        eval_file.unlink(missing_ok=True)
        code, _, err = _cli(embeddings_main, ["--no_progress", "--gpus", "0", "--beats", beats,
                                              "--folder", str(folder), "--out", str(eval_file)], capsys)
        assert code == 0, err

    extract()
    config = tiny_pretrained_config(tiny_data, tmp_path)
    config["pretrained"]["checkpoint"] = beats
    config["data"]["eval_folder"] = str(folder)
    conf = write_config(config, tmp_path / "eval.yaml")
    run_cli(conf, "--eval_from_checkpoint", str(fused.best), "--log_dir", str(tmp_path / "out"))
    raw = tmp_path / "out" / "version_0" / "metrics_eval" / "teacher" / "scores" / "raw"
    code, _, err = _cli(inference_main, ["--checkpoint", str(fused.best), "--gpus", "0", "--out_dir",
                                         str(tmp_path / "detect"), str(folder)], capsys)
    assert code == 0, err
    for name, frames in (("short", 94), ("full", 156)):
        evaluated, inferred = _scores(raw / f"{name}.tsv"), _scores(tmp_path / "detect" / "scores" / f"{name}.wav.tsv")
        assert evaluated.shape == inferred.shape == (frames, 10)
        assert np.abs(evaluated - inferred).max() < 2e-6

    write_wav(folder / "long.wav", seconds=12.0, seed=3)
    extract()
    with pytest.raises(SystemExit) as exit_info:
        train_main("t", str(conf), "unused", argv=["--conf_file", str(conf), "--gpus", "0", "--eval_from_checkpoint",
                                                  str(fused.best), "--log_dir", str(tmp_path / "out2")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: ") and "long.wav: 12 s, longer than the 10 s" in error
    assert "python -m desed_task.inference" in error


def _train_error(conf: Path, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        train_main("t", str(conf), "unused", argv=["--conf_file", str(conf), "--gpus", "0"])
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, errors
    return errors[0]


def test_a_clip_without_embeddings_stops_before_training(fused, tiny_data, tmp_path, capsys):
    shutil.copytree(fused.root / "emb", tmp_path / "emb")
    synth = tmp_path / "emb" / "beats" / "synth_train.hdf5"
    with h5py.File(synth, "r+") as f:
        clip = f["filenames"][3].decode()
        f["filenames"][3] = ""  # as an extraction that could not read it leaves it
    config = tiny_pretrained_config(tiny_data, tmp_path)
    config["pretrained"]["checkpoint"] = str(fused.root / "beats.pt")
    error = _train_error(write_config(config, tmp_path / "fused.yaml"), capsys)
    assert str(synth) in error and f"no embeddings of clip {clip}.wav" in error and "synth set" in error
    assert not (tmp_path / "exp").exists()


def test_missing_embeddings_files_name_the_extraction_command(tiny_data, tmp_path, capsys):
    config = tiny_pretrained_config(tiny_data, tmp_path)
    del config["demo"]  # the demo would extract them
    error = _train_error(write_config(config, tmp_path / "fused.yaml"), capsys)
    assert str(tmp_path / "emb" / "beats" / "synth_train.hdf5") in error
    assert "python -m desed_task.embeddings" in error and "--conf_file" in error


def test_a_2023_checkpoints_hyper_parameters_are_read(fused, tmp_path):
    """2023's pretrained.yaml keys the 2021 recipe did not have (and its log_dir) load."""
    checkpoint = torch.load(fused.best, weights_only=True)
    hparams = checkpoint["hyper_parameters"]
    hparams["log_dir"] = "./exp/2023_baseline"
    hparams["training"].update(deterministic=False, enable_progress_bar=True, precision=32, backend="dp")
    hparams["data"].update(strong_folder="../../data/dcase/dataset/audio/train/strong_label_real_16k/",
                           strong_folder_44k="../../data/dcase/dataset/audio/train/strong_label_real/",
                           strong_tsv="../../data/dcase/dataset/metadata/train/audioset_strong.tsv")
    torch.save(checkpoint, tmp_path / "2023.ckpt")
    again = run_cli(fused.conf, "--test_from_checkpoint", str(tmp_path / "2023.ckpt"), "--log_dir", str(tmp_path / "t"))
    assert again["teacher"]["psds1"] == pytest.approx(fused.results["teacher"]["psds1"], abs=1e-9)


# ---------------------------------------------------------------------------- inference and export
def _cli(main, argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def _scores(path: Path) -> np.ndarray:
    return np.loadtxt(path, skiprows=1)[:, 2:]


def test_inference_computes_the_embeddings_as_the_test_read_them(fused, tiny_data, tmp_path, capsys):
    from desed_task.inference.cli import main

    clip = tiny_data / "audio" / "validation" / "validation_16k" / "0.wav"
    long = write_wav(tmp_path / "in" / "long.wav", seconds=13.0, fs=44100, channels=2)
    short = write_wav(tmp_path / "in" / "short.wav", seconds=3.0)
    code, out, err = _cli(main, ["--checkpoint", str(fused.best), "--gpus", "0", "--out_dir", str(tmp_path / "out"),
                                 str(clip), str(tmp_path / "in")], capsys)
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["scored"] == 3
    # a dev-test clip: BEATs on the fly gives the scores the test gave from the extracted file
    tested = _scores(fused.root / "exp" / "version_0" / "metrics_test" / "teacher" / "scores" / "raw" / "0.tsv")
    scored = _scores(tmp_path / "out" / "scores" / "0.wav.tsv")
    assert scored.shape == tested.shape == (156, 10)
    assert np.abs(scored - tested).max() < 2e-6
    assert _scores(tmp_path / "out" / "scores" / "long.wav.tsv").shape == (203, 10)
    assert _scores(tmp_path / "out" / "scores" / "short.wav.tsv").shape == (47, 10)
    assert long.is_file() and short.is_file()


def test_inference_without_the_beats_file_says_what_to_pass(fused, tmp_path, capsys):
    from desed_task.inference.cli import main

    checkpoint = torch.load(fused.best, weights_only=True)
    checkpoint["hyper_parameters"]["pretrained"]["checkpoint"] = str(tmp_path / "absent.pt")
    torch.save(checkpoint, tmp_path / "moved.ckpt")
    wav = write_wav(tmp_path / "in" / "clip.wav", seconds=4.0)
    argv = ["--checkpoint", str(tmp_path / "moved.ckpt"), "--gpus", "0", "--out_dir", str(tmp_path / "out"), str(wav)]
    code, _, err = _cli(main, argv, capsys)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1, err
    assert "moved.ckpt" in errors[0] and "--beats BEATS.pt" in errors[0] and "absent.pt" in errors[0]
    code, _, err = _cli(main, [*argv, "--beats", str(fused.root / "beats.pt")], capsys)
    assert code == 0, err
    code, _, err = _cli(main, [*argv, "--beats", str(fused.root / "beats.pt"), "--window", "12"], capsys)
    assert code == 2 and "windows of at most 10 s" in err


def test_onnx_export_holds_beats_and_equals_pytorch(fused, tmp_path, capsys):
    import onnxruntime as ort

    from desed_task.export.cli import main as export_main
    from desed_task.inference import SoundEventDetector
    from desed_task.inference.cli import main as inference_main

    onnx_path = tmp_path / "fused.onnx"
    export_main(["--checkpoint", str(fused.best), "--onnx", str(onnx_path)])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["onnx"] == str(onnx_path)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == ["batch", 160000]
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["clip_samples"] == "160000" and "zero-padded" in meta["input"]
    audio = 0.1 * torch.randn(2, 160000, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        strong, weak = SoundEventDetector.from_checkpoint(fused.best).pipeline(audio)
    onnx_strong, onnx_weak = session.run(["strong", "weak"], {"audio": audio.numpy()})
    assert np.abs(onnx_strong - strong.numpy()).max() < 1e-4 and np.abs(onnx_weak - weak.numpy()).max() < 1e-4

    wav = write_wav(tmp_path / "in" / "long.wav", seconds=13.0)
    for name, extra in (("torch", []), ("onnx", ["--onnx", str(onnx_path)])):
        code, _, err = _cli(inference_main, ["--checkpoint", str(fused.best), "--gpus", "0",
                                             "--out_dir", str(tmp_path / name), str(wav), *extra], capsys)
        assert code == 0, err
    assert np.abs(_scores(tmp_path / "torch" / "scores" / "long.wav.tsv")
                  - _scores(tmp_path / "onnx" / "scores" / "long.wav.tsv")).max() < 1e-4
