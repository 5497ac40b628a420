"""Two CPU trainings on one machine: the demo training step alone, then two at once.

Runs `bench_train_step.py` once alone and then twice at the same time (each starts timing when
both are warm) and prints the solo step, each concurrent step and their ratio. Fair sharing of
the cores gives about 2x; idle OpenMP threads that spin instead of sleeping give far more.

    python benchmarks/bench_shared_cores.py [--conf_file confs/demo.yaml] [--threads 2]
        [--steps 5] [--env KEY=VALUE ...]

--env sets a variable in both runs, e.g. `--env GOMP_SPINCOUNT=300000` gives torch's OpenMP
threads back libgomp's default spinning (desed_task sets GOMP_SPINCOUNT=5000),
`--env OMP_WAIT_POLICY=PASSIVE` makes them sleep at once and `--env OMP_WAIT_POLICY=ACTIVE`
makes them spin for good.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEP_BENCH = REPO / "benchmarks" / "bench_train_step.py"


def run_group(n: int, step_args: list[str], env: dict[str, str]) -> list[float]:
    """Start `n` step benchmarks at once; their median step times (s)."""
    with tempfile.TemporaryDirectory() as barrier:
        cmd = [sys.executable, str(STEP_BENCH), *step_args, "--barrier", barrier, "--parties", str(n)]
        procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) for _ in range(n)]
        outputs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit("error: a step benchmark failed:\n" + "\n".join(outputs))
    return [json.loads(out.strip().splitlines()[-1])["median_s"] for out in outputs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conf_file", default=str(REPO / "confs" / "demo.yaml"))
    parser.add_argument("--threads", type=int, default=None, help="CPU threads of each run (default: as training)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    env = dict(os.environ)
    env.update(item.split("=", 1) for item in args.env)
    step_args = ["--conf_file", args.conf_file, "--device", "cpu", "--steps", str(args.steps)]
    if args.threads:
        step_args += ["--threads", str(args.threads)]

    (solo,) = run_group(1, step_args, env)
    pair = run_group(2, step_args, env)
    print(f"config {args.conf_file}, threads {args.threads or 'as training'}, env {' '.join(args.env) or '-'}, "
          f"OMP_WAIT_POLICY={env.get('OMP_WAIT_POLICY', '(unset)')}, GOMP_SPINCOUNT={env.get('GOMP_SPINCOUNT', '(unset: 5000 by desed_task)')}")
    print(f"solo step:         {solo * 1000:8.1f} ms")
    for i, step in enumerate(pair, start=1):
        print(f"concurrent step {i}: {step * 1000:8.1f} ms  ({step / solo:.2f}x solo)")
    print(f"ratio (slowest concurrent / solo): {max(pair) / solo:.2f} (goal: <= 2.5)")


if __name__ == "__main__":
    main()
