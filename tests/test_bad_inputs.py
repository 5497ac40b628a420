"""Bad inputs end with exit status 2 and one `error: ...` line naming the file and the fix, or,
where the 2021 recipe went on, with a warning counted in a summary line. No traceback, and no
version_N folder left by a run that stopped before training."""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import write_wav
from pipeline import REPO, tiny_config, write_config

from desed_task.config import ConfigError, load_config, validate_config
from desed_task.data.classes import DESED_CLASSES
from desed_task.data.datamodule import DESEDDataModule
from desed_task.data.label_encoder import ManyHotEncoder
from desed_task.data.tables import MetadataError, read_strong_table, read_weak_table
from desed_task.nnet import build_network
from desed_task.training.cli import main
from desed_task.training.finetune import build_ensemble_student
from desed_task.training.mean_teacher import MeanTeacher


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), REPO / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def no_data_config(tmp_path: Path) -> dict:
    """The tiny config without its demo section: its data paths do not exist."""
    config = tiny_config(tmp_path / "absent", tmp_path / "exp")
    del config["demo"]
    return config


def exits_with_one_error_line(capsys, call, *expected: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        call()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "Traceback" not in err, err
    for text in expected:
        assert text in err, (text, err)
    return err


# ---------------------------------------------------------------- metadata tables
def test_a_line_with_a_missing_column_is_refused_with_its_line(tmp_path):
    strong = tmp_path / "strong.tsv"
    strong.write_text("filename\tonset\toffset\tevent_label\na.wav\t0.5\t1.0\tDog\nb.wav\t1.0\t2.0\n")
    with pytest.raises(MetadataError, match=r"strong.tsv: line 3: 3 of the 4 tab-separated columns"):
        read_strong_table(strong, DESED_CLASSES)
    weak = tmp_path / "weak.tsv"
    weak.write_text("filename\tevent_labels\na.wav\tDog,Cat\nb.wav\n")
    with pytest.raises(MetadataError, match=r"weak.tsv: line 3: 1 of the 2"):
        read_weak_table(weak, DESED_CLASSES)
    strong.write_text("filename\tonset\toffset\tevent_label\nb.wav\t\t\t\n\n")  # no event: fine
    assert len(read_strong_table(strong, DESED_CLASSES)) == 1


def test_labels_past_the_end_truncated_and_stereo_clips_are_counted(tmp_path, caplog):
    """A 10 s clip with an event at 12 s: the event is dropped. A 3 s clip whose labels go to
    9 s and whose durations entry says 10 s: skipped as truncated (scored as 10 s, its lost
    events would count as misses). A stereo clip: mixed down, counted."""
    folder = tmp_path / "test"
    write_wav(folder / "a.wav", seconds=10.0)
    write_wav(folder / "b.wav", seconds=3.0)
    write_wav(folder / "c.wav", seconds=10.0, channels=2)
    (tmp_path / "test.tsv").write_text(
        "filename\tonset\toffset\tevent_label\n"
        "a.wav\t1.0\t2.0\tDog\na.wav\t12.0\t13.0\tCat\n"
        "b.wav\t1.0\t2.0\tSpeech\nb.wav\t5.0\t9.0\tDog\n"
        "c.wav\t0.0\t1.0\tDog\n"
    )
    (tmp_path / "test_dur.tsv").write_text("filename\tduration\na.wav\t10.0\nb.wav\t10.0\nc.wav\t10.0\n")
    config = no_data_config(tmp_path)
    config["data"].update(
        test_folder=str(folder), test_folder_44k=None,
        test_tsv=str(tmp_path / "test.tsv"), test_dur=str(tmp_path / "test_dur.tsv"),
    )
    config = validate_config(config)
    data = DESEDDataModule(config, ManyHotEncoder.from_config(config), mode="test")
    with caplog.at_level(logging.INFO):
        data.setup("test")
    assert data.test_set.filenames == ["a.wav", "c.wav"]
    assert list(data.test_events["event_label"]) == ["Dog", "Dog"]
    assert list(data.test_durations["filename"]) == ["a.wav", "c.wav"]
    text = caplog.text
    assert "1 event(s) start at or after their clip's end" in text and "test.tsv line 3: a.wav onset 12" in text
    assert "test: 0 missing, 0 unreadable, 1 truncated (of 3)" in text
    assert "b.wav: 3 s of audio" in text
    assert "1 multi-channel clip(s) mixed down to mono" in text


# ---------------------------------------------------------------- config
@pytest.mark.parametrize("value", [-3, 0])
def test_a_non_positive_batch_size_val_is_refused_by_the_config_check(tmp_path, value):
    config = no_data_config(tmp_path)
    config["training"]["batch_size_val"] = value
    conf = write_config(config, tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match=r"bad.yaml: 'training.batch_size_val' must be >= 1"):
        load_config(conf)


def test_config_errors_of_the_command_line(tmp_path, capsys):
    run = lambda *argv: main("t", "unused.yaml", str(tmp_path / "exp"), argv=list(argv))  # noqa: E731
    exits_with_one_error_line(capsys, lambda: run("--conf_file", str(tmp_path / "nope.yaml")), "nope.yaml: config file not found")
    broken = tmp_path / "broken.yaml"
    broken.write_text("training: [1, 2\n")
    exits_with_one_error_line(capsys, lambda: run("--conf_file", str(broken)), "broken.yaml: not valid YAML")
    conf = write_config(no_data_config(tmp_path), tmp_path / "tiny.yaml")
    exits_with_one_error_line(capsys, lambda: run("--conf_file", str(conf), "--test_from_checkpoint", str(tmp_path / "x.ckpt")), "x.ckpt: checkpoint not found")
    exits_with_one_error_line(capsys, lambda: run("--conf_file", str(conf), "--gpus", "one"), "--gpus one")
    assert not (tmp_path / "exp").exists()


# ---------------------------------------------------------------- checkpoints
def test_resuming_from_a_truncated_checkpoint_is_refused_before_anything_is_made(tmp_path, capsys):
    config = no_data_config(tmp_path)
    module = MeanTeacher(config, build_network(config["net"]), list(DESED_CLASSES), 0.064)
    whole = tmp_path / "last.ckpt"
    torch.save({"state_dict": module.state_dict(), "optimizer_states": [], "hyper_parameters": config}, whole)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    conf = write_config(config, tmp_path / "tiny.yaml")
    argv = ["--conf_file", str(conf), "--gpus", "0", "--resume_from_checkpoint", str(truncated)]
    exits_with_one_error_line(capsys, lambda: main("t", "x", "x", argv=argv), "truncated.ckpt: not a readable checkpoint", "truncated")
    assert not (tmp_path / "exp").exists()


def _checkpoint_of(student, config: dict, path: Path) -> Path:
    module = MeanTeacher(config, student, list(DESED_CLASSES), 0.064)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": config}, path)
    return path


def test_a_checkpoint_given_to_the_other_script_names_its_script(tmp_path, capsys):
    config = no_data_config(tmp_path)
    conf = write_config(config, tmp_path / "tiny.yaml")
    ssep = _checkpoint_of(build_network(config["net"], ensemble=config["training"]), config, tmp_path / "ssep.ckpt")
    argv = ["--conf_file", str(conf), "--gpus", "0", "--log_dir", str(tmp_path / "exp")]
    exits_with_one_error_line(
        capsys, lambda: main("t", "x", "x", argv=[*argv, "--test_from_checkpoint", str(ssep)]),
        "ssep.ckpt: a finetune_on_separated.py (SSEP + SED) checkpoint",
    )
    sed = _checkpoint_of(build_network(config["net"]), config, tmp_path / "sed.ckpt")
    exits_with_one_error_line(
        capsys,
        lambda: main("t", "x", "x", build_student=build_ensemble_student, separated_sources=True,
                     argv=[*argv, "--test_from_checkpoint", str(sed)]),
        "sed.ckpt: a train_sed.py checkpoint",
    )
    assert not (tmp_path / "exp").exists()


# ---------------------------------------------------------------- the other scripts
def test_run_separation_without_tensorflow_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    write_wav(tmp_path / "test" / "a.wav", seconds=1.0)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "inference.meta").write_bytes(b"")
    (model_dir / "model.ckpt-3547330.index").write_bytes(b"")
    config = yaml.safe_load((REPO / "confs" / "sep+sed.yaml").read_text())
    config["training"].update(sep_graph=str(model_dir / "inference.meta"), sep_checkpoint=str(model_dir / "model.ckpt-3547330"))
    config["separation"] = {"backend": "tensorflow"}  # the reference backend needs TensorFlow
    config["data"] = {"audio_max_len": 10, "fs": 16000, "net_subsample": 4,
                      "test_folder_16k": str(tmp_path / "test"), "test_folder_sep": str(tmp_path / "sep")}
    conf = tmp_path / "sep.yaml"
    conf.write_text(yaml.safe_dump(config))
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # `import tensorflow` raises ImportError
    status = load_script("run_separation.py").main(["--conf_file", str(conf), "--test_only"])
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: separation needs TensorFlow") and 'pip install -e ".[separation]"' in err

    # the default backend reads the checkpoint without TensorFlow: a broken one is named
    del config["separation"]
    config["training"]["sep_model"] = str(tmp_path / "absent.pt")
    conf.write_text(yaml.safe_dump(config))
    assert load_script("run_separation.py").main(["--conf_file", str(conf), "--test_only"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "model.ckpt-3547330" in err[0], err


def test_both_demo_builders_refuse_an_unknown_size_alike(tmp_path, capsys):
    """train_sed.py and run_separation.py build the demo through the one builder of
    `desed_task.data_generation.demo`: the same error line, and nothing is built."""
    config = tiny_config(tmp_path / "demo", tmp_path / "exp")
    config["demo"]["sizes"] = {"synthetic_trains": 3}
    conf = write_config(config, tmp_path / "tiny.yaml")
    err = exits_with_one_error_line(
        capsys, lambda: main("t", str(conf), "unused", argv=["--conf_file", str(conf), "--gpus", "0"]),
        "demo.sizes: unknown key(s) synthetic_trains; the sizes are synthetic_train, weak",
    )
    separation = yaml.safe_load((REPO / "confs" / "demo_sep+sed.yaml").read_text())
    separation["demo"] = config["demo"]
    sep_conf = write_config(separation, tmp_path / "sep.yaml")
    assert load_script("run_separation.py").main(["--conf_file", str(sep_conf), "--test_only"]) == 2
    assert capsys.readouterr().err.strip() == err
    assert not any(tmp_path.glob("demo*")) and not (tmp_path / "exp").exists()


def test_generator_without_network_ends_with_the_download_error(tmp_path, capsys):
    generator = load_script("generate_dcase_task4_2021.py")
    argv = ["--basedir", str(tmp_path), "--only_synth", "--mirror", "http://127.0.0.1:9"]
    exits_with_one_error_line(
        capsys, lambda: sys.exit(generator.main(generator.__doc__, argv)),
        "download failed", "url: http://127.0.0.1:9/", "check the network",
    )


@pytest.mark.slow
def test_the_real_script_prints_one_line_and_leaves_no_folder(tmp_path):
    config = no_data_config(tmp_path)
    config["training"]["batch_size_val"] = -3
    conf = write_config(config, tmp_path / "bad.yaml")
    proc = subprocess.run(
        [sys.executable, str(REPO / "train_sed.py"), "--conf_file", str(conf), "--gpus", "0"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {conf}: 'training.batch_size_val' must be >= 1, got -3"
    ], proc.stderr
    assert not (tmp_path / "exp").exists()


def test_a_bad_table_stops_the_command_before_any_version_folder(tmp_path, capsys):
    write_wav(tmp_path / "test" / "a.wav", seconds=10.0)
    (tmp_path / "test.tsv").write_text("filename\tonset\toffset\tevent_label\na.wav\t1.0\t2.0\tDog\na.wav\t3.0\n")
    (tmp_path / "test_dur.tsv").write_text("filename\tduration\na.wav\t10.0\n")
    config = no_data_config(tmp_path)
    config["data"].update(test_folder=str(tmp_path / "test"), test_folder_44k=None,
                          test_tsv=str(tmp_path / "test.tsv"), test_dur=str(tmp_path / "test_dur.tsv"))
    conf = write_config(config, tmp_path / "tiny.yaml")
    sed = _checkpoint_of(build_network(config["net"]), config, tmp_path / "sed.ckpt")
    argv = ["--conf_file", str(conf), "--gpus", "0", "--log_dir", str(tmp_path / "exp"), "--test_from_checkpoint", str(sed)]
    exits_with_one_error_line(capsys, lambda: main("t", "x", "x", argv=argv), "test.tsv: line 3: 2 of the 4")
    assert not (tmp_path / "exp").exists()
