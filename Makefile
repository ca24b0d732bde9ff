# The one place that knows how to install and run monitor. The Dockerfile and
# .ci/run use these same targets, so what is tested is what ships.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# the Docker image installs with EXTRAS= (no test tools); development and CI use dev
EXTRAS ?= dev
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install test test-slow lint demo bench bench-alerts bench-attribution bench-budget bench-drift bench-ingest bench-estimation bench-ui bench-window clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade "pip>=24" wheel

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e ".$(if $(EXTRAS),[$(EXTRAS)])"
	# The PredictionLog protos. Its wheel depends on the full `tensorflow` package,
	# which would overwrite tensorflow-cpu's files: install it without dependencies
	# (grpcio and protobuf already come with tensorflow-cpu).
	$(BIN)/python -m pip install --no-deps "tensorflow-serving-api>=2.16,<2.22"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check monitor tests benchmarks migrations

demo: $(STAMP)
	$(BIN)/monitor --config config.toml demo

# every benchmark exits 1 when it misses a target: run them all, then fail if one did
bench: $(STAMP)
	status=0; \
	for b in alerts attribution budget drift ingest estimation ui window; do $(MAKE) --no-print-directory bench-$$b || status=1; done; \
	exit $$status

bench-alerts: $(STAMP)
	$(BIN)/python benchmarks/alerts.py

bench-attribution: $(STAMP)
	$(BIN)/python benchmarks/attribution.py

bench-budget: $(STAMP)
	$(BIN)/python -m benchmarks.budget

bench-drift: $(STAMP)
	$(BIN)/python benchmarks/drift.py

bench-ingest: $(STAMP)
	$(BIN)/python benchmarks/ingest.py

bench-ui: $(STAMP)
	$(BIN)/python benchmarks/ui.py

bench-window: $(STAMP)
	$(BIN)/python benchmarks/window.py

# NannyML 0.13, the reference for label-free estimation, in its own virtualenv: it pins
# plotly<6 and pulls lightgbm, and needs statsmodels without declaring it.
NANNYML_VENV ?= .venv-nannyml
$(NANNYML_VENV)/.installed:
	$(PYTHON) -m venv $(NANNYML_VENV)
	$(NANNYML_VENV)/bin/python -m pip install --upgrade "pip>=24" wheel
	$(NANNYML_VENV)/bin/python -m pip install "nannyml==0.13.*" statsmodels pyarrow
	touch $@

bench-estimation: $(STAMP) $(NANNYML_VENV)/.installed
	$(BIN)/python benchmarks/estimation.py --nannyml-python $(NANNYML_VENV)/bin/python

clean:
	rm -rf $(VENV) $(NANNYML_VENV) .pytest_cache build *.egg-info demo-output
