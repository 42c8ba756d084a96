"""Sweeps: grids of ordinary runs, a local scheduler that packs them onto device slots, and
Slurm through submitit (the grammar: grid.py; specs: spec.py; the sweep directory: records.py and
store.py; executors: local.py, slurm.py; the faces' entry points: control.py)."""
