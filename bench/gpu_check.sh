#!/usr/bin/env bash
# GPU checks and figures, for a host with one CUDA GPU (never run by `make test` or CI).
#
#   bash bench/gpu_check.sh [OUT_DIR]
#
# 1. the training loop's GPU tests (tests/test_gpu.py) and the loop/model tests with device auto = cuda;
# 2. epoch throughput on the GPU (digits and 28x28), regsweep against the minimal and DataLoader loops,
#    plus bf16 autocast;
# 3. four small sweeps, on Ray Tune and on the local executor: `resources.gpu: 0.25` (four trials share the
#    GPU) and `resources.gpu: 0` (the trials must not reach the GPU they were not given); the results
#    table's `device` column says where each trial trained; with MLflow importable, the local GPU sweep once more
#    with MLflow on;
# 4. the overhead benchmark's 64 x 3 CPU sweep pinned to 2 and to 4 of the host's cores (bench/overhead_cores.py):
#    what spare cores do for MLflow's share of a short sweep.
# STEPS="1 3" runs only those steps (default: all four).
# Wheels in .whl/ are installed first where the host lacks packages: `bash bench/gpu_wheels.sh` makes them here
# (Ray without its Java jar and dashboard build, Optuna, pydantic, mlxtend, mlflow-skinny, ...).
set -u
STEPS=${STEPS:-1 2 3 4}
step() { case " $STEPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
OUT=${1:-${OUT:-/tmp/gpu-check}}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
$PY -c "import torch, ray, optuna, pydantic; print('torch', torch.__version__, 'ray', ray.__version__, 'optuna', optuna.__version__)" \
  | tee -a "$OUT/gpu.txt"
$PY -c "import mlflow; print('mlflow', mlflow.__version__)" 2>/dev/null | tee -a "$OUT/gpu.txt"
lscpu -e=CPU,CORE,SOCKET,NODE 2>/dev/null | head -6 | tee -a "$OUT/gpu.txt"

if step 1; then
echo "== 1. tests on the GPU"
timeout 120 $PY -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_loop.py tests/test_models.py 2>&1 \
  | tail -30 | tee "$OUT/tests.txt"
fi

if step 2; then
echo "== 2. epoch throughput on the GPU"
timeout 60 $PY bench/epoch_throughput.py --quick --device cuda --bf16 2>&1 | tee "$OUT/throughput_digits.txt"
timeout 90 $PY bench/epoch_throughput.py --device cuda --bf16 2>&1 | tee "$OUT/throughput_28x28.txt"
fi

if step 3; then

echo "== 3. sweeps on the GPU host, on Ray Tune and on the local executor, against a plain loop"
# One sweep for all four runs; the baseline reads the same file: its 8 trials one after another in one fresh
# process (imports included, as the sweeps' times include theirs), the loop a user would write around the
# same trainable.
cat > /tmp/gpu-sweep.yaml <<EOF
trainable: cnn
dataset: mnist_5k
fixed: {layers: 2, filters: 32, norm: batch, epochs: 4, batch_size: 64}
search_space: {dropout: {grid: [0.1, 0.3]}, norm: {grid: [batch, group]}}
search: {algorithm: grid}
seeds: 2
metric: val_acc
mode: max
EOF
SECONDS=0
timeout 90 $PY - <<'EOF' 2>&1 | tee -a "$OUT/sweeps.txt"
import itertools, time
start = time.perf_counter()
import yaml
import trainables
spec = yaml.safe_load(open("/tmp/gpu-sweep.yaml"))
fixed = {"dataset": spec["dataset"], **spec["fixed"], "device": "cuda"}
names = list(spec["search_space"])
grids = [spec["search_space"][name]["grid"] for name in names] + [range(spec["seeds"])]
best, count = 0.0, 0
for *values, seed in itertools.product(*grids):
    rows = list(trainables.cnn({**fixed, **dict(zip(names, values)), "seed": seed}))
    best, count = max(best, rows[-1]["val_acc"]), count + 1
print(f"plain loop on cuda: {count} trials in {time.perf_counter() - start:.1f} s (best val_acc {best:.4f})")
EOF
echo "plain loop: wall=${SECONDS} s (process start included)" | tee -a "$OUT/sweep_logs.txt"
runs="ray:0.25 ray:0 local:0.25 local:0"
$PY -c "import mlflow" 2>/dev/null && runs="$runs local:0.25:mlflow"
export MLFLOW_TRACKING_URI="sqlite:////tmp/gpu-mlflow/mlflow.db"
mkdir -p /tmp/gpu-mlflow
for run in $runs; do
  executor=${run%%:*} rest=${run#*:} gpu=${rest%%:*} tracking=--no-mlflow
  name="${executor}gpu${gpu/./}"
  case $run in *:mlflow) tracking="" name="${name}mlflow" ;; esac
  { echo "name: $name"; cat /tmp/gpu-sweep.yaml; echo "resources: {executor: $executor, cpu: 1, gpu: $gpu}"; } \
    > "/tmp/$name.yaml"
  SECONDS=0
  timeout $([ "$executor" = ray ] && echo 75 || echo 45) $PY -m regsweep run "/tmp/$name.yaml" $tracking --fresh --results /tmp/gpu-results > "/tmp/$name.log" 2>&1
  echo "$name: rc=$? wall=${SECONDS} s" | tee -a "$OUT/sweep_logs.txt"
  tail -5 "/tmp/$name.log" | tee -a "$OUT/sweep_logs.txt"
  $PY - "$name" <<'EOF' | tee -a "$OUT/sweeps.txt"
import sys, pandas as pd
name = sys.argv[1]
frame = pd.read_parquet(f"/tmp/gpu-results/{name}/results.parquet")
ends = frame.groupby("trial_id").last()
starts = frame.groupby("trial_id")["attempt_started_at"].min().sort_values()
print(f"{name}: {len(ends)} trials, status {ends['status'].value_counts().to_dict()}, "
      f"device {ends['device'].value_counts(dropna=False).to_dict()}, "
      f"median samples/s {frame['samples_per_second'].median():.0f}, "
      f"trials running at once at the 4th start: {int(((frame.groupby('trial_id')['reported_at'].max() > starts.iloc[min(3, len(starts) - 1)]) & (starts <= starts.iloc[min(3, len(starts) - 1)])).sum())}")
EOF
done
fi

if step 4; then
echo "== 4. the overhead benchmark's CPU sweep on 2 and on 4 of this host's cores"
timeout 240 $PY bench/overhead_cores.py --cores 0,1 --cores 0-3 --rounds 2 2>&1 | tee "$OUT/overhead_cores.txt"
fi
