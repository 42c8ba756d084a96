#!/usr/bin/env bash
# The GPU path, checked and measured in one go on a CUDA machine; stops at the first failure.
#
#   benchmarks/gpu_check.sh [--science]
#
# 1. the tests marked `cuda` (BVAE_TEST_CUDA=1: a missing GPU fails them instead of skipping);
# 2. `bvae bench --device cuda:0 --json` (float32 and, on bf16 hardware, bf16 figures), each
#    training figure with its FLOPs, GFLOP/s and fraction of the card's GEMM peak in the same
#    dtype (8192x8192, float32 and bf16, measured in the same call); fails without them;
# 3. a 20,000-iteration dSprites run (preset dsprites-H) with --eval-at-end;
# 4. `bvae export gif` of that run;
# 5. with --science: benchmarks/bf16_science.py, 3 seeds x 3,000 iterations in float32 and bf16.
#
# Everything lands in $OUT (if set, e.g. by a remote runner) or benchmarks/results/gpu-check-<stamp>/:
# the bench record, the run (metrics, eval.json, the GIF), each step's log and summary.txt.
# Environment: PYTHON (default .venv/bin/python, whose bvae is used), GPU (default 0: the GPU as
# `bvae gpus` numbers it), DATA_DIR (default ./data; dSprites is prepared there once,
# procedurally when the original npz is absent), ITERATIONS (default 20000), BENCH_ARGS and
# TRAIN_ARGS (extra options of `bvae bench` and of the 20,000-iteration `bvae train`). DEVICE=cpu
# runs the same steps on the CPU without the GPU checks: a rehearsal of the script itself, e.g.
#   DEVICE=cpu ITERATIONS=20 BENCH_ARGS=--quick TRAIN_ARGS="--dataset dsprites-mini" benchmarks/gpu_check.sh
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
BVAE="$(dirname "$PYTHON")/bvae"
GPU=${GPU:-0}
DEVICE=${DEVICE:-cuda:$GPU}
BENCH_ARGS=${BENCH_ARGS:-}
TRAIN_ARGS=${TRAIN_ARGS:-}
DATA_DIR=${DATA_DIR:-data}
ITERATIONS=${ITERATIONS:-20000}
SCIENCE=0
for arg in "$@"; do
    case "$arg" in
        --science) SCIENCE=1 ;;
        *) echo "usage: $0 [--science]" >&2; exit 2 ;;
    esac
done
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT_DIR=${OUT:-benchmarks/results/gpu-check-$STAMP}
mkdir -p "$OUT_DIR"
SUMMARY="$OUT_DIR/summary.txt"
export BVAE_DATA_DIR="$DATA_DIR" BVAE_RUNS_DIR="$OUT_DIR/runs" CUDA_DEVICE_ORDER=PCI_BUS_ID

say() { echo "$*" | tee -a "$SUMMARY"; }

# step NAME COMMAND...: run it with its output in NAME.log; time it; stop the script on failure.
step() {
    local name=$1; shift
    local start=$SECONDS
    say "== $name: $*"
    if ! "$@" >"$OUT_DIR/$name.log" 2>&1; then
        say "FAILED: $name after $((SECONDS - start)) s; the end of $OUT_DIR/$name.log:"
        tail -n 25 "$OUT_DIR/$name.log" | tee -a "$SUMMARY"
        exit 1
    fi
    say "   ok in $((SECONDS - start)) s"
}

gpu_checks() {
    step environment "$PYTHON" -c "
import torch
assert torch.cuda.is_available(), 'torch sees no CUDA GPU'
print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'cuDNN', torch.backends.cudnn.version())
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f'cuda:{i}', p.name, f'{p.total_memory / 2**30:.0f} GiB', f'capability {p.major}.{p.minor}')
"
    cat "$OUT_DIR/environment.log" >>"$SUMMARY"
    "$BVAE" gpus >>"$SUMMARY" 2>&1 || true
    # The tests see only the GPU under test (tests/conftest.py hides GPUs unless told otherwise).
    step tests env CUDA_VISIBLE_DEVICES="$GPU" BVAE_TEST_CUDA=1 \
        "$PYTHON" -m pytest -q -m cuda -p no:cacheprovider tests
    tail -n 3 "$OUT_DIR/tests.log" >>"$SUMMARY"
}

[ -x "$BVAE" ] || { say "no bvae next to $PYTHON; create the venv first (README: Install)"; exit 1; }
say "gpu_check $STAMP on $(hostname): $DEVICE, data $DATA_DIR, output $OUT_DIR"
if [ "$DEVICE" = cpu ]; then
    say "DEVICE=cpu: a rehearsal of this script; no GPU is checked or measured"
else
    gpu_checks
fi

step prepare "$BVAE" data prepare dsprites
# shellcheck disable=SC2086  # BENCH_ARGS is a list of options
step bench sh -c "'$BVAE' bench --device '$DEVICE' --json $BENCH_ARGS > '$OUT_DIR/bench.json'"
[ "$DEVICE" = cpu ] || cp "$OUT_DIR/bench.json" "benchmarks/results/$(hostname)-cuda$GPU-$STAMP.json"
"$PYTHON" - "$OUT_DIR/bench.json" >>"$SUMMARY" <<'EOF'
import json, sys
from bvae_tui.engine.bench.report import (format_fraction, format_gain, format_gflops,
                                          format_value)
from bvae_tui.engine.train.precision import describe
r = json.load(open(sys.argv[1]))
print(f"bench on {r['device']} ({r['device_name']}), torch {r['torch']}, {r['seconds']:.0f} s")
print(f"  {'figure':40s} {'bvae':>14s} {'textbook':>14s} {'gain':>7s} {'GFLOP/s':>9s} "
      f"{'of peak':>7s}")
for f in r["figures"]:
    print(f"  {f['what']:40s} {format_value(f['fast'], f['unit']):>14s} "
          f"{format_value(f['baseline'], f['unit']):>14s} {format_gain(f['gain']):>7s} "
          f"{format_gflops(f.get('gflops')):>9s} {format_fraction(f.get('of_peak')):>7s}")
# "of peak": of the card's GEMM peak in the figure's dtype (bf16 on bf16 hardware), measured
# in the same call; the peaks:
for p in r.get("peaks", []):
    print(f"  peak: {p['what']}: {format_gflops(p['gflops'])} GFLOP/s")
print(f"  precision: {describe(r['amp_auto'])}")
missing = [f["key"] for f in r["figures"] if f["key"].startswith("train.") and not f.get("of_peak")]
if missing or not any(p["key"].startswith("gemm.") for p in r.get("peaks", [])):
    print(f"FAILED: the bench record lacks the FLOP/peak figures ({missing or 'no GEMM peak'})")
    sys.exit(1)
EOF

# shellcheck disable=SC2086  # TRAIN_ARGS is a list of options
step train "$BVAE" train --preset dsprites-H --device "$DEVICE" --iterations "$ITERATIONS" \
    --eval-at-end --name gpu-check $TRAIN_ARGS
RUN=$(ls -d "$BVAE_RUNS_DIR"/*gpu-check* | tail -n 1)
"$PYTHON" - "$RUN" >>"$SUMMARY" <<'EOF'
import json, statistics, sys
from pathlib import Path
from bvae_tui.engine.train.precision import describe
run = Path(sys.argv[1])
rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
status = json.loads((run / "status.json").read_text())
config = json.loads((run / "config.json").read_text())
last = rows[-1]
print(f"run {run.name}: {status['state']} at {status['iteration']}, {last['elapsed']:.0f} s "
      f"training, median {statistics.median(r['img_per_s'] for r in rows):,.0f} img/s")
print(f"  precision: {describe(config.get('precision') or {})}")
print(f"  final loss {last['loss']:.2f} recon {last['recon']:.2f} KL {last['kl']:.2f}; "
      "KL per latent " + " ".join(f"{v:.2f}" for v in last["kl_per_latent"]))
evaluation = run / "eval.json"
if evaluation.exists():
    print(f"  eval: {json.loads(evaluation.read_text()).get('scores')}")
else:
    print(f"FAILED: no eval.json after --eval-at-end ({status.get('eval_error')})")
    sys.exit(1)
EOF
step export "$BVAE" export gif "$RUN"

if [ "$SCIENCE" = 1 ]; then
    step science "$PYTHON" benchmarks/bf16_science.py --device "$DEVICE" --iterations 3000 \
        --seeds 1 2 3 --runs-dir "$OUT_DIR/science-runs" --out "$OUT_DIR"
    grep '^|' "$OUT_DIR/science.log" >>"$SUMMARY"
fi
say "all steps passed in $SECONDS s; see $SUMMARY"
