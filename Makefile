# serendip — every target installs what it needs first, so any of them works on a fresh clone.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.serendip-installed
PROTO_SRC := $(wildcard protos/serendip/v1/*.proto)
PROTO_STAMP := serendip/v1/__init__.py
ARTIFACTS ?= artifacts
ENGINE ?= torch
DEVICE ?= cpu
# pip prints one "Location ... is ignored" line per package for this machine's local mirrors.
PIP_QUIET := grep -v -e '^WARNING: Location' -e '^$$' || true

# Ray binds only 127.0.0.1 with this (otherwise it uses the host's interface address).
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0
export PYTHONUNBUFFERED := 1

.PHONY: help setup protos test test-all lint demo serve build-engines bench clean world tree curate data train-sasrec

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

setup: $(INSTALLED) $(PROTO_STAMP)  ## Create .venv, install pinned dependencies, generate gRPC stubs

$(INSTALLED): pyproject.toml
	@echo "==> installing into $(VENV) (about 2 minutes the first time)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# The CPU build of torch first: a range resolved later would otherwise pull CUDA wheels.
	$(BIN)/pip install --quiet torch==2.13.0 2>&1 | $(PIP_QUIET)
	$(BIN)/pip install --quiet -e '.[dev]' 2>&1 | $(PIP_QUIET)
	$(BIN)/python -c "import numpy, pandas, pyarrow, torch, transformers, ray, av, grpc, tritonclient.grpc, pytriton, xgrammar"
	touch $@

protos: $(PROTO_STAMP)  ## Generate Python gRPC stubs from protos/ into serendip/v1/

$(PROTO_STAMP): $(PROTO_SRC) $(INSTALLED)
	rm -rf serendip/v1
	$(BIN)/python -m grpc_tools.protoc -Iprotos --python_out=. --grpc_python_out=. --pyi_out=. $(PROTO_SRC)
	touch $@

test: setup  ## Run the test suite (slow and GPU tests excluded)
	$(BIN)/pytest -m "not slow and not gpu"

test-all: setup  ## Run every test, slow ones included (GPU tests skip without a GPU)
	$(BIN)/pytest

lint: setup  ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

demo: setup  ## The whole embedded pipeline on synthetic data, then serve and query it
	$(BIN)/python -m serendip.demo --artifacts $(ARTIFACTS)

world: setup  ## Synthetic demo world: 2,000 mp4s, 1,500 users (about 1 min)
	$(BIN)/python -m ray_jobs.make_world --artifacts $(ARTIFACTS)

tree: setup  ## 4-level cluster tree of the latest world, with a balance/NMI report
	$(BIN)/python -m ray_jobs.build_tree --artifacts $(ARTIFACTS)

curate: setup  ## Serendipitous SFT examples (every prompt variant) from the latest world and tree
	$(BIN)/python -m ray_jobs.curate --artifacts $(ARTIFACTS)

data: world tree curate  ## world -> tree -> curation

train-sasrec: setup  ## SASRec retriever on the latest world's sessions, evaluated against popularity
	$(BIN)/python -m ray_jobs.train_sasrec --artifacts $(ARTIFACTS)

serve: setup  ## Start tritonserver and both gRPC services on 127.0.0.1 until Ctrl-C
	$(BIN)/python -m serendip.serve --artifacts $(ARTIFACTS)

build-engines: setup  ## Triton model repository from the trained MLLM and SASRec (ENGINE=torch|tensorrt_llm DEVICE=cpu|cuda)
	$(BIN)/python -m triton_models.build_engines --artifacts $(ARTIFACTS) --engine $(ENGINE) --device $(DEVICE)

bench: setup  ## Benchmarks; results in bench/results/<date>.json
	$(BIN)/python -m bench.run --output-dir bench/results

clean:  ## Remove generated stubs and run outputs (keeps .venv)
	rm -rf serendip/v1 $(ARTIFACTS) reports .pytest_cache
