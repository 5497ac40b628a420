"""desed_task: the DCASE 2021 Task 4 baseline, re-implemented on today's PyTorch and Lightning."""

import os

# Before anything loads OpenMP (torch's libgomp reads it once, when it is loaded): idle OpenMP
# threads sleep instead of spinning, so that two runs on one machine share its cores instead of
# stealing them from each other (two demo runs on 2 cores: 10x slower each with spinning
# threads, 1.5x with sleeping ones). A value set by the user is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from desed_task import warnings_filters  # noqa: E402

warnings_filters.install()

__version__ = "0.1.0"
