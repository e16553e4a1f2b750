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
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[pipeline,test]'
	touch $@

repro: $(BIN)/headstart
	$(BIN)/dvc repro
	@echo
	@cat reports/heads.md
	@echo
	$(BIN)/dvc metrics show

# the tests also cover the optional extras (Ray, timm, Hugging Face, open_clip, sentence-transformers, readers)
$(VENV)/.extras: $(BIN)/headstart
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[pipeline,test,ray,providers,readers,audit]'
	touch $@

# two worker processes, each test file on one worker (its module fixtures, e.g. one DVC repository, stay whole):
# the slow DVC pipeline tests run beside the rest instead of after it
test: $(VENV)/.extras
	$(BIN)/python -m pytest -n 2 --dist loadfile

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
