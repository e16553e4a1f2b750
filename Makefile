# `make` runs the pipeline on the built-in default (digits x MobileNetV2); `make test` runs the tests.
# Both create .venv on first use (torch and torchvision come from this machine's disk via pip).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: repro test bench clean-outputs
.DEFAULT_GOAL := repro

$(BIN)/headstart: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

repro: $(BIN)/headstart
	$(BIN)/dvc repro
	@echo
	@cat reports/heads.md
	@echo
	$(BIN)/dvc metrics show

test: $(BIN)/headstart
	$(BIN)/python -m pytest

bench: $(BIN)/headstart
	$(BIN)/python benchmarks/embed_speed.py
	$(BIN)/python benchmarks/photos.py
	$(BIN)/python benchmarks/noop.py
	$(BIN)/python benchmarks/precision.py
	$(BIN)/python benchmarks/memory.py
	$(BIN)/python benchmarks/load.py
	$(BIN)/python benchmarks/knn.py
	$(BIN)/python benchmarks/logreg_sweep.py
	$(BIN)/python benchmarks/dvc_rerun.py
