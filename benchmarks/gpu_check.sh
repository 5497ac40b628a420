#!/usr/bin/env bash
# The GPU check: every GPU path of the project once, on one machine, in a few minutes, with one
# markdown report of every figure.
#
#   bash benchmarks/gpu_check.sh [--cpu] [--out REPORT.md] [--data DEMO_ROOT] [--work DIR]
#                                [--budget SECONDS (default 420)]
#
# Steps (each with its own time limit; a failure or a timeout is written in the report and the
# next step runs):
#   1. data: a small demo-shaped dataset written without scaper, confs/sed.yaml and
#      confs/pretrained.yaml pointed at it, a stand-in BEATs (benchmarks/gpu_check_data.py;
#      --data DEMO_ROOT uses a dataset of python -m desed_task.data_generation.demo instead)
#   2. train_sed.py --fast_dev_run --gpus 1 on the sed.yaml variant (the 2021 network, [12, 12, 24])
#   3. the stand-in BEATs' embeddings (python -m desed_task.embeddings --conf_file), then
#      train_sed.py --fast_dev_run --gpus 1 on the pretrained.yaml variant ([24, 24, 48])
#   4. benchmarks/bench_train_step.py --device cuda: float32, bf16-mixed and 16-mixed (sed.yaml),
#      float32 (pretrained.yaml)
#   5. benchmarks/bench_embeddings.py --device cuda (BEATs of the iter3 size, random weights)
#   6. benchmarks/bench_separation.py (when the file exists; its arguments: SEPARATION_ARGS,
#      default "--device cuda"; on --cpu: one 1 s clip, batch 1, one round)
#   7. benchmarks/bench_inference.py --gpus 1 (real-time factor: PyTorch on the GPU, ONNX Runtime)
#   8. train_sed.py --fast_dev_run --gpus 2 (two-process DDP) when two GPUs are there
# --cpu: the same steps on the CPU in tiny sizes (the tests' networks, batch [2, 2, 4], a few
# clips; bench_train_step.py in float32 and bf16-mixed), in about a minute: checks the script.
#
# Needs the project importable by $PYTHON (default: python; the repository is put on PYTHONPATH,
# no installation is needed) with its run-time packages (torch, lightning, numpy, pandas, scipy,
# soundfile, h5py, pyyaml, tqdm, tensorboard; onnx and onnxruntime for step 7). No network access.
# The report: --out (default exp/gpu_check.md); the logs of every step beside it, in
# <report>.logs/. Exit status 0 when every step that ran was ok, 1 otherwise (the report is written
# either way), 2 for a wrong argument.
set -u
{ # the whole script is read before it runs: editing the file meanwhile cannot change a running check

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python}
MODE=gpu
OUT=exp/gpu_check.md
DATA=""
WORK=""
BUDGET=420

usage() { sed -n '2,/^set -u/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) MODE=cpu ;;
    --out) OUT=$2; shift ;;
    --data) DATA=$2; shift ;;
    --work) WORK=$2; shift ;;
    --budget) BUDGET=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$BUDGET" in ''|*[!0-9]*) echo "error: gpu_check.sh: --budget $BUDGET is not a number of seconds" >&2; exit 2 ;; esac
if [ -n "$DATA" ] && [ ! -d "$DATA" ]; then
  echo "error: gpu_check.sh: --data $DATA is not a folder; build a demo dataset with python -m desed_task.data_generation.demo --root DIR" >&2
  exit 2
fi

# paths given are read from where the script was started; the default report goes under the repository
[ "$OUT" = exp/gpu_check.md ] && OUT="$REPO/$OUT"
mkdir -p "$(dirname "$OUT")" || exit 2
OUT=$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")
[ -n "$DATA" ] && DATA=$(cd "$DATA" && pwd)
[ -n "$WORK" ] && { mkdir -p "$WORK" && WORK=$(cd "$WORK" && pwd) || exit 2; }
cd "$REPO" || exit 2
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
LOGS="$OUT.logs"
rm -rf "$LOGS" && mkdir -p "$LOGS" || exit 2
if [ -z "$WORK" ]; then
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX") || exit 2
  trap 'rm -rf "$WORK"' EXIT
fi
mkdir -p "$WORK" || exit 2
START=$(date +%s)
SUMMARY="$LOGS/summary.md"
SECTIONS="$LOGS/sections.md"
: >"$SUMMARY"; : >"$SECTIONS"
STEP=0
FAILED=0

if [ "$MODE" = gpu ]; then
  GPUS=1; DEVICE=cuda; TINY=""; PRECISIONS="32 bf16-mixed 16-mixed"; STEPS=10
  EMB_ARGS="--clips 64 --batch_size 16"; INF_ARGS="--minutes 10 --long_factor 0 --gpus 1"
  STEP_CONF="confs/sed.yaml"; STEP_CONF_2023="confs/pretrained.yaml"
else
  GPUS=0; DEVICE=cpu; TINY="--tiny"; PRECISIONS="32 bf16-mixed"; STEPS=1
  EMB_ARGS="--clips 2 --batch_size 2 --threads 2"
  INF_ARGS="--minutes 0.5 --long_factor 0 --threads 2 --conf_file $WORK/sed.yaml"
  STEP_CONF="$WORK/sed.yaml"; STEP_CONF_2023="$WORK/pretrained.yaml"
fi
if [ "$MODE" = gpu ]; then SEP_DEFAULT="--device cuda"
else SEP_DEFAULT="--device cpu --clips 1 --seconds 1 --rounds 1 --batch_size 1 --threads 2 --workers 0 --no_memory"; fi
SEPARATION_ARGS=${SEPARATION_ARGS:-$SEP_DEFAULT}

# run_step TITLE LIMIT_S TAIL_LINES COMMAND...: run it with its own time limit (cut to what is
# left of --budget), its output in a log; a row in the summary and its output's tail in the report
run_step() {
  local title=$1 limit=$2 tail_lines=$3; shift 3
  STEP=$((STEP + 1))
  local log="$LOGS/$(printf '%02d' "$STEP").log"
  local left=$((BUDGET - ($(date +%s) - START)))
  local status seconds rc
  if [ "$left" -lt 15 ]; then
    status="not run: the --budget of ${BUDGET} s is spent"; seconds="-"; FAILED=$((FAILED + 1))
    echo "[gpu_check] $title: $status" >&2
  else
    [ "$limit" -gt "$left" ] && limit=$left
    echo "[gpu_check] $title (limit ${limit} s)" >&2
    local t0 t1
    t0=$(date +%s.%N)
    timeout -k 10 "$limit" "$@" >"$log" 2>&1 </dev/null
    rc=$?
    t1=$(date +%s.%N)
    seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    case $rc in
      0) status="ok" ;;
      124|137) status="TIMED OUT after ${limit} s"; FAILED=$((FAILED + 1)) ;;
      *) status="FAILED (exit $rc)"; FAILED=$((FAILED + 1)) ;;
    esac
  fi
  echo "| $STEP | $title | $status | $seconds |" >>"$SUMMARY"
  {
    echo; echo "### $STEP. $title: $status ($seconds s)"; echo
    echo '```'; echo "\$ $*"
    if [ -f "$log" ]; then
      # progress bars: keep what follows the last carriage return of each line
      tr '\r' '\n' <"$log" | grep -v -e '^USDT:' -e '^[[:space:]]*$' -e 'it/s\]$' -e '?it/s' | tail -n "$tail_lines"
    fi
    echo '```'
  } >>"$SECTIONS"
}

# note_step TITLE TEXT: a step that does not run here, with the reason
note_step() {
  STEP=$((STEP + 1))
  echo "| $STEP | $1 | $2 | - |" >>"$SUMMARY"
  { echo; echo "### $STEP. $1: $2"; } >>"$SECTIONS"
}

versions() {
  "$PYTHON" - <<'EOF' 2>&1
import importlib, platform, sys
print(f"- python {sys.version.split()[0]} ({sys.executable}), {platform.platform()}")
try:
    import torch
    line = f"- torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}"
    print(line + f", {torch.get_num_threads()} CPU threads")
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            print(f"- GPU {i}: {p.name}, {p.total_memory / 2**30:.1f} GiB, compute capability {p.major}.{p.minor}")
    else:
        print("- no GPU visible to torch")
except Exception as err:  # noqa: BLE001
    print(f"- torch: not importable ({err})")
found = []
for name in ("lightning", "numpy", "pandas", "scipy", "soundfile", "h5py", "onnx", "onnxruntime", "desed_task"):
    try:
        found.append(f"{name} {getattr(importlib.import_module(name), '__version__', '?')}")
    except Exception as err:  # noqa: BLE001
        found.append(f"{name}: not importable ({type(err).__name__})")
print("- " + ", ".join(found))
EOF
  if command -v nvidia-smi >/dev/null 2>&1; then
    echo "- nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | paste -sd ';' -)"
  fi
}

commit() {  # the repository's commit, when git is there
  local head
  head=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null) || { echo "? (no git)"; return; }
  git -C "$REPO" diff --quiet HEAD 2>/dev/null && echo "$head" || echo "$head (with local changes)"
}

N_GPUS=0
if [ "$MODE" = gpu ]; then
  N_GPUS=$("$PYTHON" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
  if [ "$N_GPUS" = 0 ]; then
    echo "[gpu_check] warning: torch sees no GPU; the GPU steps will fail (use --cpu for the CPU check)" >&2
  fi
fi

DATA_ARGS=()
[ -n "$DATA" ] && DATA_ARGS=(--data "$DATA")
run_step "data: demo-shaped dataset and configs" 180 5 \
  "$PYTHON" benchmarks/gpu_check_data.py --work "$WORK" $TINY "${DATA_ARGS[@]}"
run_step "train_sed.py --fast_dev_run, confs/sed.yaml on the demo data" 300 20 \
  "$PYTHON" train_sed.py --conf_file "$WORK/sed.yaml" --log_dir "$WORK/exp_sed" --gpus "$GPUS" --fast_dev_run
run_step "embeddings of the stand-in BEATs (python -m desed_task.embeddings)" 180 8 \
  "$PYTHON" -m desed_task.embeddings --conf_file "$WORK/pretrained.yaml" --gpus "$GPUS" --no_progress
run_step "train_sed.py --fast_dev_run, confs/pretrained.yaml on the demo data" 300 20 \
  "$PYTHON" train_sed.py --conf_file "$WORK/pretrained.yaml" --log_dir "$WORK/exp_pretrained" --gpus "$GPUS" --fast_dev_run
for precision in $PRECISIONS; do
  run_step "training step, $(basename "$STEP_CONF"), precision $precision" 180 12 \
    "$PYTHON" benchmarks/bench_train_step.py --conf_file "$STEP_CONF" --device "$DEVICE" --precision "$precision" \
    --steps "$STEPS" $([ "$MODE" = cpu ] && echo --threads 2)
done
run_step "training step, 2023 CRNN with embeddings ($(basename "$STEP_CONF_2023")), precision 32" 180 12 \
  "$PYTHON" benchmarks/bench_train_step.py --conf_file "$STEP_CONF_2023" --device "$DEVICE" --steps "$STEPS" \
  $([ "$MODE" = cpu ] && echo --threads 2)
run_step "BEATs extraction speed" 240 10 \
  "$PYTHON" benchmarks/bench_embeddings.py --device "$DEVICE" $EMB_ARGS
if [ -f benchmarks/bench_separation.py ]; then
  # shellcheck disable=SC2086
  run_step "separation speed" 240 20 "$PYTHON" benchmarks/bench_separation.py $SEPARATION_ARGS
else
  note_step "separation speed" "not available (no benchmarks/bench_separation.py)"
fi
# shellcheck disable=SC2086
run_step "inference real-time factor" 300 10 "$PYTHON" benchmarks/bench_inference.py $INF_ARGS
if [ "$MODE" = gpu ] && [ "$N_GPUS" -ge 2 ]; then
  run_step "two-process DDP step (train_sed.py --fast_dev_run --gpus 2)" 300 20 \
    "$PYTHON" train_sed.py --conf_file "$WORK/sed.yaml" --log_dir "$WORK/exp_ddp" --gpus 2 --fast_dev_run
elif [ "$MODE" = gpu ]; then
  note_step "two-process DDP step" "not run: one GPU ($N_GPUS visible to torch)"
else
  note_step "two-process DDP step" "not run: --cpu (it runs with two GPUs)"
fi

TOTAL=$(($(date +%s) - START))
{
  echo "# GPU check ($MODE mode)"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), host $(hostname 2>/dev/null || cat /etc/hostname 2>/dev/null || echo '?')," \
       "$TOTAL s in all (budget $BUDGET s), $FAILED step(s) not ok;"
  echo "command: \`bash benchmarks/gpu_check.sh$([ "$MODE" = cpu ] && echo ' --cpu')$([ -n "$DATA" ] && echo " --data $DATA")\`, commit $(commit)"
  echo
  echo "## Versions"
  echo
  versions
  echo
  echo "## Steps"
  echo
  echo "| # | step | status | seconds |"
  echo "|---|---|---|---|"
  cat "$SUMMARY"
  echo
  echo "## Outputs (the end of each step's log; whole logs in $(basename "$LOGS")/)"
  cat "$SECTIONS"
} >"$OUT"
rm -f "$SUMMARY" "$SECTIONS"
echo "[gpu_check] report: $OUT ($FAILED step(s) not ok, $TOTAL s)" >&2
[ "$FAILED" = 0 ]
exit
}
