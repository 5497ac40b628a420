"""desed_task: the DCASE 2021 Task 4 baseline, re-implemented on today's PyTorch and Lightning."""

import os

# Before anything loads OpenMP (torch's libgomp reads it once, when it is loaded): idle OpenMP
# threads spin 5000 times before they sleep instead of libgomp's 300000, so that two runs on one
# machine share its cores instead of stealing them from each other, while one run alone keeps
# its speed. benchmarks/bench_shared_cores.py, demo step, 2 threads on 2 cores: 300000 spins
# ~1.6 s alone, 29.6 s each for two runs; 5000 spins ~1.65 s alone, 4.1 s each for two runs;
# no spinning (OMP_WAIT_POLICY=PASSIVE) 2.7 s alone. A wait policy or spin count set by the
# user is kept.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "5000"

from desed_task import warnings_filters  # noqa: E402

warnings_filters.install()

__version__ = "0.1.0"
