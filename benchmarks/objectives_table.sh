#!/usr/bin/env bash
# The README's objectives x seeds table on a CPU budget: the four objectives' dSprites presets
# (beta-VAE, beta-TCVAE, FactorVAE, DIP-VAE-I; architecture H, z 10, batch 64) trained for the
# same number of iterations with seeds 1 and 2, each scored with every metric (`bvae eval`), then
# UDR over each objective's two seeds (`bvae eval --udr`).
#
#   ITERS=300 OUT=/tmp/objectives benchmarks/objectives_table.sh
#   OBJECTIVES="tcvae factor" ...   # only these (the table shows every one OUT has results of)
#
# Two slots (one per seed) run their four jobs in turn, one thread each, so at most two
# processes train or score at a time on a 2-core machine. ITERS: size it from a measured img/s
# (a short run's metrics.jsonl) so the whole takes the budget you have. FAST: empty (default)
# for disentanglement_lib's sample sizes, --fast for about a tenth.
# Prints a markdown table at the end; every run and eval.json stays under OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${ITERS:-300}
FAST=${FAST:-}
OUT=${OUT:-/tmp/objectives}
OBJECTIVES=${OBJECTIVES:-H tcvae factor dip-i}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$OUT"

slot() {
    local seed=$1
    for objective in $OBJECTIVES; do
        local name="obj-$objective-s$seed"
        .venv/bin/bvae train --preset "dsprites-$objective" --iterations "$ITERS" --seed "$seed" \
            --device cpu --name "$name" --runs-dir "$OUT/runs" --preview-every 0 \
            >"$OUT/$name.train.log" 2>&1
        .venv/bin/bvae eval "$name" $FAST --runs-dir "$OUT/runs" --device cpu --json \
            >"$OUT/$name.eval.json" 2>"$OUT/$name.eval.log"
    done
}

start=$(date +%s)
echo "start $(date -Is) load: $(cut -d' ' -f1-3 /proc/loadavg)"
slot 1 &
first=$!
slot 2 &
second=$!
wait "$first" "$second"
for objective in $OBJECTIVES; do
    .venv/bin/bvae eval --udr "obj-$objective-s1" "obj-$objective-s2" --runs-dir "$OUT/runs" \
        --device cpu --json >"$OUT/obj-$objective.udr.json" 2>"$OUT/obj-$objective.udr.log"
done
echo "end $(date -Is) after $(( $(date +%s) - start )) s, load: $(cut -d' ' -f1-3 /proc/loadavg)"

.venv/bin/python - "$OUT" <<'EOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
metrics = ["betavae", "factorvae", "mig", "dci", "sap", "modularity", "explicitness"]
def read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() and path.read_text().strip() else None

print("| objective | seed | " + " | ".join(metrics) + " | UDR | eval s |")
print("|---" * (len(metrics) + 4) + "|")
for objective in ["H", "tcvae", "factor", "dip-i"]:
    udr = read(out / f"obj-{objective}.udr.json")
    udr_of = {row["seed"]: row["udr"] for row in udr["runs"]} if udr else {}
    for seed in (1, 2):
        res = read(out / f"obj-{objective}-s{seed}.eval.json")
        if res is None:
            continue
        cells = [f"{res['scores'][m]:.3f}" if m in res["scores"] else "-" for m in metrics]
        cells.append(f"{udr_of[seed]:.3f}" if seed in udr_of else "-")
        print(f"| {objective} | {seed} | " + " | ".join(cells) + f" | {res['seconds']:.0f} |")
EOF
