# cprcoach: `make demo` sets everything up and runs the workflow on the synthetic dataset;
# `make test` runs the tests. Both create the virtualenv on first use.

PYTHON ?= python3
VENV ?= .venv
CONFIG ?= config.yaml
CORES ?= all
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed

# Rules call `python -m cprcoach...`: make the virtualenv's python the one they find.
export PATH := $(BIN):$(PATH)

.PHONY: setup data demo full report test bench lint format clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install --quiet --no-deps --editable .
	$(BIN)/python -c "import cprcoach.video.ffmpeg as f, subprocess; subprocess.run([f.ffmpeg_exe(), '-version'], check=True, capture_output=True)"
	touch $@

data: setup
	$(BIN)/cprcoach synth --config $(CONFIG)

# After a crash or a kill, `make demo` again finishes the run (cprcoach workflow: README, Resuming).
demo: data
	$(BIN)/cprcoach workflow --cores $(CORES) --configfile $(CONFIG) --quiet rules
	$(BIN)/snakemake --cores 1 --configfile $(CONFIG) --report results/report.html

# Every modality, fused, over three seeds (config.full.yaml extends config.yaml): it reuses the
# demo's preprocessing; about an hour and a half more on 2 CPU cores (README, Models).
full: data
	$(BIN)/cprcoach workflow --cores $(CORES) --configfile config.full.yaml --quiet rules
	$(BIN)/snakemake --cores 1 --configfile config.full.yaml --report results/report.html

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/cprcoach video bench

lint: setup
	$(BIN)/snakemake --lint --configfile $(CONFIG)
	$(BIN)/snakefmt --check workflow/Snakefile rules/

format: setup
	$(BIN)/snakefmt workflow/Snakefile rules/

clean:
	rm -rf results .snakemake
