"""One user-error type and one runner: every error class a user can fix subclasses
`desed_task.errors.UserError`, every command line ends through `desed_task.command_line.run_command`
(exit status 2 and one ``error:`` line on a user error), and a bug keeps its traceback (exit
status 1), never printed as a user error."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import desed_task
from desed_task.command_line import Interrupted, run_command
from desed_task.errors import UserError

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "desed_task"

NOT_USER_ERRORS = {
    "desed_task.command_line.Interrupted": "a signal stopped the run: its own exit status, 128 + signum",
    "desed_task.data_generation.dcase2021.real_audio.ClipUnavailable":
        "one YouTube clip that cannot be fetched: listed in missing_files, never ends a command",
}
"""Exception classes of the package that are not user errors, and why."""


def _package_exception_classes() -> dict[str, type]:
    """{module.qualname: class} of every exception class defined in the package."""
    found = {}
    for info in pkgutil.walk_packages(desed_task.__path__, "desed_task."):
        if info.name.endswith("__main__"):
            continue  # running it is the command itself
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseException) and value.__module__ == info.name:
                found[f"{info.name}.{value.__qualname__}"] = value
    return found


def test_every_error_class_of_the_package_is_a_user_error_or_named_as_not_one():
    classes = _package_exception_classes()
    assert set(NOT_USER_ERRORS) <= set(classes), "a class of NOT_USER_ERRORS moved or went"
    outside = sorted(name for name, cls in classes.items()
                     if not issubclass(cls, UserError) and name not in NOT_USER_ERRORS)
    assert not outside, (f"{outside}: subclass desed_task.errors.UserError (a mistake the user can "
                         "fix), or name the class in NOT_USER_ERRORS with the reason it is not one")
    assert len(classes) >= 25  # the walk found the package's classes


# ---------------------------------------------------------------- the runner
def test_the_runner_ends_a_user_error_with_its_line_and_status_2(capsys):
    def command():
        raise UserError("conf.yaml: line 3: 'training.batch_size' must be >= 1")

    assert run_command(command) == 2
    assert capsys.readouterr().err == "error: conf.yaml: line 3: 'training.batch_size' must be >= 1\n"


def test_the_runner_keeps_the_status_and_the_special_endings(capsys):
    assert run_command(lambda: None) == 0
    assert run_command(lambda: 1) == 1

    def stopped():
        raise Interrupted(signal.SIGTERM, "interrupted by SIGTERM while training; go on with: python train_sed.py")

    assert run_command(stopped) == 128 + signal.SIGTERM
    assert capsys.readouterr().err == "interrupted by SIGTERM while training; go on with: python train_sed.py\n"

    def stopped_elsewhere():  # another process of a distributed run: nothing printed
        raise Interrupted(signal.SIGINT, "")

    assert run_command(stopped_elsewhere) == 128 + signal.SIGINT
    assert capsys.readouterr().err == ""

    def ctrl_c():
        raise KeyboardInterrupt

    assert run_command(ctrl_c, ctrl_c_message="interrupted before training: nothing was written") == 130
    assert capsys.readouterr().err == "interrupted before training: nothing was written\n"


def test_the_runner_lets_a_bug_through_with_its_traceback():
    def bug():
        raise ValueError("an index off by one")

    with pytest.raises(ValueError, match="off by one"):
        run_command(bug)


def test_a_download_error_line_says_to_run_again(capsys):
    from desed_task.data_generation.dcase2021.downloads import DownloadError

    def command():
        raise DownloadError("https://zenodo.org/x.zip", Path("x.zip"), "connection refused")

    assert run_command(command) == 2
    line = capsys.readouterr().err
    assert line.startswith("error: connection refused (url: https://zenodo.org/x.zip, file: x.zip); check the network")
    assert line.endswith("run the same command again: finished steps are kept\n")


# ---------------------------------------------------------------- every entry point
def _entry_points() -> list[Path]:
    """The scripts at the repository root and every module run by ``python -m``."""
    scripts = [path for path in REPO.glob("*.py") if "__main__" in path.read_text()]
    modules = [path for path in PACKAGE.rglob("*.py") if 'if __name__ == "__main__"' in path.read_text()
               or path.name == "__main__.py"]
    return sorted(scripts + modules)


def _function(module: str, name: str) -> ast.FunctionDef | None:
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    if not path.is_file():
        path = path.with_suffix("") / "__init__.py"
    tree = ast.parse(path.read_text())
    return next((node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == name), None)


def _calls_the_runner(function: ast.FunctionDef) -> bool:
    return any(isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "run_command"
               for node in ast.walk(function))


@pytest.mark.parametrize("path", _entry_points(), ids=lambda path: str(path.relative_to(REPO)))
def test_every_entry_point_goes_through_the_runner(path):
    """The ``main`` an entry point runs (its own, or the one it imports) calls `run_command`,
    and catches no broad exception itself."""
    tree = ast.parse(path.read_text())
    own = next((node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "main"), None)
    if own is not None:
        mains = [own]
    else:
        module = path.relative_to(PACKAGE.parent).with_suffix("").as_posix().replace("/", ".")
        mains = [_function(node.module if node.level == 0 else module.rsplit(".", node.level)[0] + "." + node.module,
                           alias.name)
                 for node in tree.body if isinstance(node, ast.ImportFrom) and node.module
                 for alias in node.names if alias.name.endswith("main")]
    assert mains and all(main is not None for main in mains), f"{path}: no main found"
    assert any(_calls_the_runner(main) for main in mains), f"{path}: its main does not call run_command"
    broad = {"Exception", "BaseException", "ValueError", "RuntimeError", "OSError", "FileNotFoundError"}
    for main in mains:
        for handler in (node for node in ast.walk(main) if isinstance(node, ast.ExceptHandler)):
            names = {n.id for n in ast.walk(handler.type) if isinstance(n, ast.Name)} if handler.type else {"*"}
            assert not names & (broad | {"*"}), f"{path}: {main.name} catches {names}: leave that to run_command"


# ---------------------------------------------------------------- a bug is not a user error
def test_a_bug_inside_inference_keeps_its_traceback(tmp_path, monkeypatch, capsys):
    """Before the runner, inference printed any ValueError as ``error:``."""
    from desed_task.inference import cli
    from desed_task.inference.detector import SoundEventDetector

    def broken(*args, **kwargs):
        raise ValueError("an index off by one deep in the detector")

    monkeypatch.setattr(SoundEventDetector, "from_checkpoint", broken)
    (tmp_path / "a.wav").write_bytes(b"")
    with pytest.raises(ValueError, match="off by one"):
        cli.main(["--checkpoint", str(tmp_path / "x.ckpt"), "--gpus", "0", str(tmp_path / "a.wav")])
    assert "error:" not in capsys.readouterr().err


@pytest.mark.slow
def test_a_bug_ends_the_process_with_status_1_and_its_traceback(tmp_path):
    (tmp_path / "gt.tsv").write_text("filename\tonset\toffset\tevent_label\na.wav\t0.0\t1.0\tDog\n")
    (tmp_path / "dur.tsv").write_text("filename\tduration\na.wav\t10.0\n")
    program = textwrap.dedent(f"""
        import sys
        from desed_task.evaluation import cli

        def broken(*args, **kwargs):
            raise ValueError("an index off by one deep in the evaluation")

        cli.read_event_table = broken
        sys.exit(cli.main(["--ground_truth", {str(tmp_path / "gt.tsv")!r}, "--durations",
                           {str(tmp_path / "dur.tsv")!r}, "--predictions", {str(tmp_path / "gt.tsv")!r}]))
    """)
    proc = subprocess.run([sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" in proc.stderr and "off by one" in proc.stderr
    assert not any(line.startswith("error:") for line in proc.stderr.splitlines()), proc.stderr


def test_an_absent_onnx_file_is_a_user_error(tmp_path, capsys):
    """Before the runner, ONNX Runtime's own exception ended the command with a traceback."""
    from desed_task.inference import cli

    (tmp_path / "a.wav").write_bytes(b"")
    with pytest.raises(SystemExit) as stop:
        cli.main(["--checkpoint", str(tmp_path / "x.ckpt"), "--onnx", str(tmp_path / "absent.onnx"), str(tmp_path / "a.wav")])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"error: --onnx {tmp_path / 'absent.onnx'}: no such file")


def test_an_absent_input_folder_of_the_generator_is_a_user_error(tmp_path, capsys):
    """Before the runner, the generator caught every FileNotFoundError; now the folder is checked."""
    from desed_task.data_generation.dcase2021.cli import main

    argv = ["--basedir", str(tmp_path), "--only_synth", "--fsd50k", str(tmp_path / "absent"), "--mirror", "http://127.0.0.1:9"]
    assert main("generate", argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: --fsd50k {tmp_path / 'absent'}: no such folder; give the folder of the dataset on disk, "
                   "or leave the option out to have it downloaded"), err
    assert not (tmp_path / "raw_datasets").exists()
