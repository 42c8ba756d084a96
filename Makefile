# Two commands do all the set-up on a fresh machine (see README):
#   make demo   create .venv, install, prepare procedural dSprites, train a beta-VAE, export, score
#   make test   create .venv, install, lint, run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The torch wheels this project is developed and tested with; override for another CUDA build.
TORCH  ?= torch==2.14.1 torchvision==0.29.1
DEMO_ITERATIONS ?= 3000
# A fresh name each time, so the export and eval steps find exactly this run.
DEMO_NAME := demo-$(shell date +%Y%m%d-%H%M%S)
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint bench docs clean-venv slurm-packages

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/bvae data prepare dsprites
	$(BIN)/bvae train --preset dsprites-H --iterations $(DEMO_ITERATIONS) --name $(DEMO_NAME)
	$(BIN)/bvae export gif $(DEMO_NAME)
	$(BIN)/bvae export png $(DEMO_NAME)
	$(BIN)/bvae eval $(DEMO_NAME)

lint: $(STAMP)
	$(BIN)/ruff check .

# Debian's Slurm for tests/test_slurm_real.py: installed once, as root (else those tests skip,
# and fail under CI=true).
SLURM_PKGS := slurm-wlm slurmdbd munge mariadb-server
slurm-packages:
	@if [ "$$(id -u)" = 0 ] && ! { [ -x /usr/sbin/slurmctld ] && [ -x /usr/sbin/slurmdbd ] && \
	    [ -x /usr/sbin/munged ] && [ -x /usr/sbin/mariadbd ]; }; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $(SLURM_PKGS); fi

test: $(STAMP) slurm-packages
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/bvae bench

# docs/run-directory.md and docs/cli.md are generated from engine/runs/records.py and the Typer
# app (tests check both are current); then the site is built strictly into site/ (git-ignored).
docs: $(STAMP)
	$(BIN)/python -m bvae_tui.engine.runs.records --markdown > docs/run-directory.md
	$(BIN)/python -m bvae_tui.cli.reference > docs/cli.md
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

clean-venv:
	rm -rf $(VENV)
