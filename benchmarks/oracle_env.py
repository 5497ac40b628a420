"""The reference environment of the 2021 evaluation tools: psds_eval 0.5.3 and sed_eval 0.2.1.

psds_eval 0.5.3 does not run on numpy >= 2.3 or pandas 3 (this project's versions), so the
benchmark and the golden-file script run the 2021 tools in a Python of their own:
``--oracle_python PATH`` when given, else a virtual environment kept under
``$DESED_TASK_ORACLE_VENV`` (default ``~/.cache/desed_task/oracle-venv``), created with pip
on first use (a few minutes, about 300 MB).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ORACLE_REQUIREMENTS = ["psds_eval==0.5.3", "sed_eval==0.2.1", "numpy<2.3", "pandas<3"]
VENV_VARIABLE = "DESED_TASK_ORACLE_VENV"


def default_venv() -> Path:
    """Where the oracle environment lives: ``$DESED_TASK_ORACLE_VENV`` or the user's cache."""
    return Path(os.environ.get(VENV_VARIABLE) or Path.home() / ".cache" / "desed_task" / "oracle-venv")


def has_reference_tools(python: Path) -> bool:
    """Whether ``python`` imports psds_eval and sed_eval."""
    if not python.is_file():
        return False
    check = subprocess.run(
        [str(python), "-c", "import psds_eval, sed_eval"], capture_output=True, text=True, check=False
    )
    return check.returncode == 0


def venv_python(folder: Path) -> Path:
    return folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def create_oracle_venv(folder: Path) -> Path:
    """Create (or complete) the virtual environment with the 2021 tools; return its python."""
    if folder.exists() and any(folder.iterdir()) and not (folder / "pyvenv.cfg").is_file():
        raise SystemExit(f"error: {folder} exists and is not a virtual environment; "
                         f"set {VENV_VARIABLE} to an empty or new folder")
    print(f"oracle: creating a virtual environment with {' '.join(ORACLE_REQUIREMENTS)} in {folder}"
          f" (once, a few minutes; set {VENV_VARIABLE} to put it elsewhere)", flush=True)
    venv.EnvBuilder(with_pip=True, clear=(folder / "pyvenv.cfg").is_file()).create(folder)
    python = venv_python(folder)
    install = [str(python), "-m", "pip", "install", "--quiet", *ORACLE_REQUIREMENTS]
    completed = subprocess.run(install, check=False)
    if completed.returncode != 0 or not has_reference_tools(python):
        raise SystemExit(f"error: could not install the 2021 tools in {folder} (see pip's output above)")
    print(f"oracle: ready, {python}", flush=True)
    return python


def oracle_python(explicit: str | None = None, create: bool = True) -> Path | None:
    """A Python that runs psds_eval 0.5.3 and sed_eval, saying which one is used.

    Args:
        explicit: ``--oracle_python``; used as given (an error when it lacks the tools).
        create: build the cached environment when it is missing; else return None.
    """
    if explicit:
        python = Path(explicit)
        if not has_reference_tools(python):
            raise SystemExit(f"error: --oracle_python {python} cannot import psds_eval and sed_eval; "
                             f"install {' '.join(ORACLE_REQUIREMENTS)} there, or leave the option out")
        print(f"oracle: using {python} (--oracle_python)", flush=True)
        return python
    folder = default_venv()
    python = venv_python(folder)
    if has_reference_tools(python):
        print(f"oracle: using the environment in {folder}", flush=True)
        return python
    if not create:
        return None
    return create_oracle_venv(folder)


def run_in_oracle(python: Path, script: Path, *args: str) -> None:
    """Run ``script`` under the oracle python (for scripts that re-run themselves there)."""
    sys.exit(subprocess.run([str(python), str(script), *args], check=False).returncode)
