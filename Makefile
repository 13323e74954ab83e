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
SEQREC_FORMAT ?= torchscript
# pip prints one "Location ... is ignored" line per package for this machine's local mirrors.
PIP_QUIET := grep -v -e '^WARNING: Location' -e '^$$' || true

# Ray binds only 127.0.0.1 with this (otherwise it uses the host's interface address).
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0
export PYTHONUNBUFFERED := 1

.PHONY: help setup protos test test-all lint demo serve build-engines bench clean world tree curate data train-sasrec train-mllm ablations

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

lint: setup  ## ruff check and format check, and the layer contract (import-linter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

demo: setup  ## The whole embedded pipeline on synthetic data, then serve and query it
	$(BIN)/python -m serendip.demo --artifacts $(ARTIFACTS)

# The stage targets below run the stage graph (serendip/pipeline.py): the named stage always runs, what it reads
# is built first when missing, and stages whose inputs are unchanged are reused. Each job also runs alone:
# `python -m serendip.jobs.<job> --help`.
world: setup  ## Synthetic demo world: 2,000 mp4s, 1,500 users (about 1 min)
	$(BIN)/python -m serendip.pipeline --artifacts $(ARTIFACTS) --until world --rerun world

tree: setup  ## 4-level cluster tree of the latest world, with a balance/NMI report
	$(BIN)/python -m serendip.pipeline --artifacts $(ARTIFACTS) --until tree --rerun tree

curate: setup  ## Serendipitous SFT examples (every prompt variant) from the latest world and tree
	$(BIN)/python -m serendip.pipeline --artifacts $(ARTIFACTS) --until curation --rerun curation

data: setup  ## world -> tree -> curation through the stage graph (finished stages with unchanged inputs are reused)
	$(BIN)/python -m serendip.pipeline --artifacts $(ARTIFACTS) --until curation

train-mllm: setup  ## Fine-tune the planner MLLM (video CoT, 4 frames, 6-minute budget) -> artifacts/mllm/<version>
	$(BIN)/python -m serendip.pipeline --artifacts $(ARTIFACTS) --until mllm --rerun mllm

ablations: setup  ## Paper Figs 3-5: prompt variants, frame counts, thumbnail -> reports/mllm_ablations/<stamp>
	$(BIN)/python -m serendip.jobs.mllm_ablations --curation $(ARTIFACTS)/curation

train-sasrec: setup  ## SASRec retriever on the latest world's sessions, evaluated against popularity
	$(BIN)/python -m serendip.pipeline --artifacts $(ARTIFACTS) --until sasrec --rerun sasrec

# Your own catalogue end to end (docs/data.md, "Your own catalogue, end to end"). Without ARTIFACTS= on the command
# line it writes to artifacts_catalogue/ (never into a root that holds a synthetic world).
PIPELINE_ARTIFACTS = $(if $(filter file,$(origin ARTIFACTS)),artifacts_catalogue,$(ARTIFACTS))
MLLM_STEPS ?= 300

.PHONY: pipeline

pipeline: setup  ## Your data end to end: make pipeline ITEMS=items.parquet INTERACTIONS=interactions.parquet [MEDIA_ROOT= ARTIFACTS= MLLM_STEPS= NAMER_MODEL=]
	@test -n "$(ITEMS)" -a -n "$(INTERACTIONS)" || { echo "usage: make pipeline ITEMS=path INTERACTIONS=path [MEDIA_ROOT=path] [ARTIFACTS=dir]"; exit 2; }
	$(BIN)/python -m serendip.pipeline_user --items $(ITEMS) --interactions $(INTERACTIONS) \
		$(if $(MEDIA_ROOT),--media-root $(MEDIA_ROOT)) --artifacts $(PIPELINE_ARTIFACTS) --mllm-steps $(MLLM_STEPS) \
		$(if $(NAMER_MODEL),--namer-model $(NAMER_MODEL)) --engine $(ENGINE) --device $(DEVICE) --seqrec-format $(SEQREC_FORMAT)

serve: setup  ## Start tritonserver and both gRPC services on 127.0.0.1 until Ctrl-C
	$(BIN)/python -m serendip.serve --artifacts $(ARTIFACTS)

build-engines: setup  ## Triton model repository from the trained MLLM and SASRec (ENGINE=torch|tensorrt_llm DEVICE=cpu|cuda SEQREC_FORMAT=torchscript|export)
	$(BIN)/python -m serendip.pipeline --artifacts $(ARTIFACTS) --until model_repository --rerun model_repository --engine $(ENGINE) --device $(DEVICE) --seqrec-format $(SEQREC_FORMAT)

bench: setup  ## Benchmarks; results in bench/results/<date>.json, reports/replay/<stamp>/ and BENCHMARKS.md
	$(BIN)/python -m bench.run --output-dir bench/results --artifacts $(ARTIFACTS)
	$(BIN)/python -m bench.replay --artifacts $(ARTIFACTS)

# Scaling run (docs/scale.md): hours at the default sizes; SCALE_ARGS="--sizes 10000 100000 --stages tree curation".
SCALE_ARGS ?= --sizes 10000 100000 1000000

.PHONY: bench-scale

bench-scale: setup  ## Cost against catalogue size (10k/100k/1M items): bench/results/scale-<stamp>.json/.png, BENCHMARKS.md
	nice $(BIN)/python -m bench.scale --output-dir bench/results $(SCALE_ARGS)

clean:  ## Remove generated stubs and run outputs (keeps .venv)
	rm -rf serendip/v1 $(ARTIFACTS) reports .pytest_cache

# --- Ray jobs (docs/ray_jobs.md) -----------------------------------------------------------------------
RAY_PORT ?= 6379
RAY_DASHBOARD_PORT ?= 8265
RAY_NUM_CPUS ?= 2
# ray-down stops only the head ray-up started (its process group), never other Ray instances on the machine.
RAY_HEAD_DIR ?= $(or $(TMPDIR),/tmp)/serendip-ray-$(RAY_PORT)

.PHONY: ray-up ray-down batch-plans

ray-up: setup  ## Start a local Ray head on 127.0.0.1 (token auth) for `ray job submit`; stop it with ray-down
	mkdir -p $(RAY_HEAD_DIR)
	test ! -s $(RAY_HEAD_DIR)/head.pid || ! kill -0 $$(cat $(RAY_HEAD_DIR)/head.pid) 2>/dev/null \
		|| { echo "a head started by ray-up is running (pid $$(cat $(RAY_HEAD_DIR)/head.pid))"; exit 1; }
	PATH="$(abspath $(BIN)):$$PATH" RAY_AUTH_MODE=token setsid $(BIN)/ray start --head --block \
		--node-ip-address 127.0.0.1 --port $(RAY_PORT) --dashboard-host 127.0.0.1 \
		--dashboard-port $(RAY_DASHBOARD_PORT) --num-cpus $(RAY_NUM_CPUS) > $(RAY_HEAD_DIR)/head.log 2>&1 & \
		echo $$! > $(RAY_HEAD_DIR)/head.pid
	for attempt in $$(seq 120); do \
		RAY_AUTH_MODE=token $(BIN)/ray job list --address http://127.0.0.1:$(RAY_DASHBOARD_PORT) > /dev/null 2>&1 && break; \
		kill -0 $$(cat $(RAY_HEAD_DIR)/head.pid) || { cat $(RAY_HEAD_DIR)/head.log; exit 1; }; sleep 1; done
	@echo "Ray head on 127.0.0.1:$(RAY_PORT); submit jobs with:"
	@echo "  RAY_AUTH_MODE=token $(BIN)/ray job submit --address http://127.0.0.1:$(RAY_DASHBOARD_PORT)" \
		"--working-dir . -- python -m ray_jobs.batch_plans --artifacts $(abspath $(ARTIFACTS))"

ray-down:  ## Stop the Ray head started by ray-up (only that one)
	@pid_file=$(RAY_HEAD_DIR)/head.pid; \
	if [ ! -s $$pid_file ]; then echo "no head started by ray-up"; exit 0; fi; \
	head_pid=$$(cat $$pid_file); \
	kill -TERM $$head_pid 2>/dev/null || true; \
	for attempt in $$(seq 60); do kill -0 $$head_pid 2>/dev/null || break; sleep 1; done; \
	kill -KILL -- -$$head_pid 2>/dev/null || true; \
	rm -f $$pid_file; \
	address_file=$${RAY_TMPDIR:-/tmp}/ray/ray_current_cluster; \
	if grep -qx "127.0.0.1:$(RAY_PORT)" $$address_file 2>/dev/null; then rm -f $$address_file; fi; \
	echo "stopped the Ray head (process group $$head_pid)"
# SIGTERM makes `ray start --block` stop the processes it started (their workers exit with the raylet); the
# address file it leaves would make a plain ray.init() look for the dead head.

batch-plans: setup  ## Popular corpus -> frame store -> plan table, incremental (joins RAY_ADDRESS when set)
	$(BIN)/python -m serendip.pipeline --artifacts $(ARTIFACTS) --until plans --rerun corpus --rerun frames --rerun plans

.PHONY: keywords
keywords: setup  ## Item keyword summaries (MLLM, incremental) + related keywords from the logs -> artifacts/keywords/<version>
	$(BIN)/python -m ray_jobs.item_keywords --artifacts $(ARTIFACTS)

# --- Load tests and reliability runs (docs/loadtest.md); loopback only, every run bounded -------------------
LOADTEST_ARGS ?= --target plan --target retrieve --target recommend --mode sweep

.PHONY: loadtest soak

loadtest: setup  ## Load test on 127.0.0.1 (LOADTEST_ARGS="--mode saturate --slo-p99-ms 50"); reports/loadtest/
	nice $(BIN)/python -m bench.loadtest --artifacts $(ARTIFACTS) $(LOADTEST_ARGS)

soak: setup  ## Reliability (not in CI): 60 s at 0.8x saturation, 10k-request fuzz, Triton killed under load
	nice $(BIN)/python -m bench.reliability --artifacts $(ARTIFACTS)

# --- Offline A/B evaluation (docs/evaluation.md) ---------------------------------------------------------------
.PHONY: eval

eval: setup  ## Offline A/B test of all arms on the world; report in reports/eval/<timestamp>/ (EVAL_ARGS="--users 300")
	nice $(BIN)/python -m serendip.jobs.evaluate --artifacts $(ARTIFACTS) $(EVAL_ARGS)

# --- Plan explorer (docs/explorer.md) ------------------------------------------------------------------------
EXPLORE_PORT ?= 8050
PLANNER_ADDRESS ?= 127.0.0.1:50061
RETRIEVER_ADDRESS ?= 127.0.0.1:50062

.PHONY: explore

explore: setup  ## Plan explorer on http://127.0.0.1:8050/ over the Planner and Retriever (starts the stack if none serves)
	$(BIN)/python -m serendip.explorer --artifacts $(ARTIFACTS) --planner $(PLANNER_ADDRESS) \
		--retriever $(RETRIEVER_ADDRESS) --port $(EXPLORE_PORT) --start-stack
