# Two commands for a fresh clone:  make run  (set up + main job)   make test  (set up + tests)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export MLFLOW_DISABLE_TELEMETRY := true
export RAY_USAGE_STATS_ENABLED := 0
export TF_CPP_MIN_LOG_LEVEL := 2
# MLproject commands call `python`: make it the venv's, as if activated.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup run test test-fast lint format bench clean tracking-server tracking-server-stop

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

# The fused RNN kernel (C++), compiled once per machine down a ladder of compiler flags
# (lstm_keras/kernel_build.py). Fails, with every rung's errors, when a compiler is there and no
# rung builds; without a compiler, or with LSTM_KERAS_FUSED=0, the layers use tf_while instead.
$(VENV)/.kernel: lstm_keras/kernels/fused_rnn.cc lstm_keras/kernel_build.py $(VENV)/.installed
	$(BIN)/python -m lstm_keras.fused_engine build
	touch $@

setup: $(VENV)/.installed $(VENV)/.kernel

run: setup
	$(BIN)/mlflow run . --env-manager local

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Everything but the tests marked slow (servers, clusters, a browser, compilers, long trainings).
test-fast: lint
	$(BIN)/python -m pytest -m "not slow" --durations=15

test: lint
	$(BIN)/python -m pytest --durations=25
	KERAS_BACKEND=jax $(BIN)/python -m pytest -m backend_agnostic

tracking-server: setup
	$(BIN)/python -m experiments.tracking.server start

tracking-server-stop: setup
	$(BIN)/python -m experiments.tracking.server stop

bench: setup
	$(BIN)/python -m experiments.benchmark

clean:
	rm -rf $(VENV) mlruns mlartifacts mlflow.db
