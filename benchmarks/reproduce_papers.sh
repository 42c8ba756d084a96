#!/usr/bin/env bash
# The papers' two claims at their budget (issue 21), with the tool itself, on procedural dSprites:
#   Higgins et al. 2017: beta = 4 disentangles where beta = 1 does not (objective H), scored with
#     the full `bvae eval` (and DCI again with --exact);
#   Burgess et al. 2018: objective B (gamma 1000, C_max 25, C rising over 100,000 iterations)
#     encodes the factors one by one; the order comes from the probes (`--emergence`).
# Hours on a 2-core CPU, minutes on a GPU. Every call is safe to repeat: a run found by its name
# is resumed when stopped or lost, left alone while it trains, and scored once finished.
#
#   benchmarks/reproduce_papers.sh start    # start or resume the three runs, detached
#   benchmarks/reproduce_papers.sh status   # where they are
#   benchmarks/reproduce_papers.sh score    # eval the finished ones, print emergence
#
# RUNS_DIR, DATA_DIR, DEVICE (cpu, or e.g. cuda via --gpu auto: set DEVICE_ARGS) and BVAE (the
# bvae command) may be set in the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
BVAE=${BVAE:-.venv/bin/bvae}
RUNS_DIR=${RUNS_DIR:-$HOME/bvae-repro/runs}
DATA_DIR=${DATA_DIR:-$HOME/bvae-repro/data}
DEVICE_ARGS=${DEVICE_ARGS:---device cpu}
ITERATIONS=${ITERATIONS:-100000}
export BVAE_RUNS_DIR=$RUNS_DIR BVAE_DATA_DIR=$DATA_DIR

# name:preset
RUNS="higgins-H-b4-s1:dsprites-H higgins-H-b1-s1:dsprites-VAE burgess-B-g1000-c25-s1:dsprites-B-paper"

state_of() {  # the state of the run named $1, or "none"
  "$BVAE" runs --json | python3 -c "
import json, sys
rows = [r for r in json.load(sys.stdin) if r['name'] == sys.argv[1]]
print(rows[-1]['state'] + ' ' + rows[-1]['id'] if rows else 'none -')" "$1"
}

case "${1:-status}" in
  start)
    "$BVAE" data prepare dsprites
    for item in $RUNS; do
      name=${item%%:*} preset=${item#*:}
      read -r state id <<<"$(state_of "$name")"
      case $state in
        none) "$BVAE" train --preset "$preset" --iterations "$ITERATIONS" --name "$name" \
                --checkpoint-minutes 2 --detach $DEVICE_ARGS ;;
        stopped|lost|failed) "$BVAE" resume "$id" --detach ;;
        *) echo "$name: $state ($id)" ;;
      esac
    done ;;
  status)
    "$BVAE" runs ;;
  score)
    for item in $RUNS; do
      name=${item%%:*}
      read -r state id <<<"$(state_of "$name")"
      if [ "$state" != finished ]; then echo "$name: $state, not scored"; continue; fi
      "$BVAE" eval "$id"
      case $name in
        higgins*) "$BVAE" eval "$id" --exact --metrics dci ;;
        burgess*) "$BVAE" runs show "$id" --emergence ;;
      esac
    done ;;
  *) echo "usage: $0 start|status|score" >&2; exit 2 ;;
esac
