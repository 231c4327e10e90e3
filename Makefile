# Two commands do all set-up on a fresh machine with Python 3.11: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export OPENBLAS_NUM_THREADS ?= 1
export MLFLOW_DISABLE_TELEMETRY := true
export BENTOML_DO_NOT_TRACK := true
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help install data demo test test-slow test-all test-fast test-browser lint docs bench serve mlflow-ui clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and alone: the local CPU wheel; anything else drags in CUDA builds.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the pinned dependency set

datasets/ml-100k/ml-100k.inter: | $(STAMP)
	$(BIN)/sona data fetch

data: datasets/ml-100k/ml-100k.inter  ## fetch MovieLens 100K from the recbole wheel (md5-checked)

demo: data  ## run the experiments on MovieLens 100K, print the leaderboards, promote + export the served pipeline
	$(BIN)/sona run experiments/ml100k-baselines.yaml
	$(BIN)/sona run experiments/ml100k-zoo.yaml
	$(BIN)/sona run experiments/ml100k-pipeline.yaml
	$(BIN)/sona ingest run  # into serving/catalog.db, the catalog `sona serve` reads
	$(BIN)/sona search eval
	$(BIN)/sona promote --experiment ml100k-pipeline --model pipeline --metric ndcg_at_10 --reason "make demo"
	@echo "Open the runs: make mlflow-ui  (then http://127.0.0.1:5000)"
	@echo "Serve the champion: make serve  (then the console at http://127.0.0.1:3000/)"

test: data  ## run the test suite: everything but the `slow` tier (notebooks included), < 15 min
	$(BIN)/python -m pytest -q -p no:cacheprovider --timeout=900 -m "not slow" --durations=15

test-slow: data  ## the slow tier (ranx cross-check, Spark parity, real-server search, scaling); CI runs it too
	$(BIN)/python -m pytest -q -p no:cacheprovider --timeout=1800 -m "slow" --durations=15

test-all: data  ## both tiers
	$(BIN)/python -m pytest -q -p no:cacheprovider --timeout=1800

test-fast: data  ## the suite without slow tests and notebooks
	$(BIN)/python -m pytest -q -m "not slow and not notebook"

test-browser: data  ## the console in headless Chromium (needs Debian's chromium; also in test-slow)
	$(BIN)/python -m pytest -q -p no:cacheprovider --timeout=900 -m "browser" --durations=15

docs: $(STAMP)  ## the documentation site (build/site): API + CLI reference generated, mkdocs --strict
	$(BIN)/python -m sona.docs docs/reference
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lint: $(STAMP)  ## ruff + mypy; both always run, and any error fails (CI runs this first)
	@status=0; \
	$(BIN)/ruff check sona tests || status=1; \
	$(BIN)/mypy sona || status=1; \
	exit $$status

bench: data  ## benchmarks and sweeps (each prints a table and writes benchmarks/results/*.json)
	$(BIN)/sona bench overhead
	$(BIN)/sona bench lora
	$(BIN)/sona bench search
	$(BIN)/sona bench ann
	$(BIN)/sona bench scaling
	$(BIN)/sona bench cold-start
	$(BIN)/sona sweep experiments/ml100k-sweeps.yaml

serve: data  ## serve the champion on http://127.0.0.1:3000 (runs `make demo` first if nothing is promoted)
	test -f mlflow/mlflow.db || $(MAKE) demo
	$(BIN)/sona serve --host 127.0.0.1 --port 3000

mlflow-ui: $(STAMP)  ## open the tracking store at http://127.0.0.1:5000
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow/mlflow.db --host 127.0.0.1 --port 5000

clean:  ## remove the venv, fetched data and tracking store
	rm -rf $(VENV) datasets/ml-100k datasets/_downloads mlflow/mlflow.db mlflow/artifacts
