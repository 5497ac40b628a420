"""CPU threads: how many cores this process may use, and how many threads each part gets.

The OpenMP wait policy is set in `desed_task/__init__.py` (it must precede torch's import);
here are the thread counts: a process never starts more compute threads than the cores it is
given (CPU affinity and a cgroup CPU quota, e.g. `docker --cpus`), and data loader workers run
one thread each.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def _cgroup_quota_cores() -> int | None:
    """Cores allowed by a cgroup v2 CPU quota ("max 100000": none), rounded up."""
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_quota_cores()
    return min(cores, quota) if quota else cores


def user_thread_count() -> int | None:
    """The thread count the user asked for with OMP_NUM_THREADS, if any."""
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def set_cpu_threads(processes: int = 1, loader_workers: int = 0) -> int:
    """Set torch's intra-op threads for CPU work and return the count.

    OMP_NUM_THREADS, when set, wins. Otherwise: the cores left after the `processes` processes
    of this machine and their data loader workers. More threads than free cores makes the
    GRU's many small per-frame ops wait on descheduled threads (seen: 250x slower on 2 busy
    cores).
    """
    import torch  # here: the separation (TensorFlow) process uses this module without torch

    threads = user_thread_count() or max(1, available_cores() // max(processes, 1) - loader_workers)
    torch.set_num_threads(threads)
    return threads


def one_thread_worker(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: one torch thread per loader worker (they are many, and
    each reads and pads one clip at a time), then Lightning's worker seeding when
    `seed_everything(workers=True)` asked for it (a custom `worker_init_fn` replaces it).
    torch's worker loop sets one thread too; this keeps it so if that default changes."""
    import torch

    torch.set_num_threads(1)
    if int(os.environ.get("PL_SEED_WORKERS", "0")):
        from lightning.fabric.utilities.seed import pl_worker_init_function

        pl_worker_init_function(worker_id)
