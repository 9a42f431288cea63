# `make run` serves the app; `make test` runs every test. Both set themselves up from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test train bench clean

# Serving needs only the base install (no torch); tests and training add the extras.
$(BIN)/.serve: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

# torch==2.13.0 exactly (pinned in the train extra): the local CPU wheel, never the CUDA build.
# The browser tests drive Debian's chromium (CI runs as root on Debian), not a downloaded one.
$(BIN)/.dev: $(BIN)/.serve
	$(BIN)/pip install -q -e '.[train,test]'
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver)
	touch $@

# http://127.0.0.1:8000 with the shipped model; API docs at /docs.
run: $(BIN)/.serve
	$(BIN)/emnist-draw serve --host 127.0.0.1 --port 8000

test: $(BIN)/.dev
	$(BIN)/python -m pytest -q

# Retrains the shipped model from ../shared/data (about 1h45 on 2 cores) and exports it.
train: $(BIN)/.dev
	$(BIN)/emnist-draw train --out runs/small --epochs 30
	$(BIN)/emnist-draw export runs/small/last.pt --out emnist_draw/models/emnist-balanced-small.onnx \
		--command "emnist-draw train --out runs/small --epochs 30"

bench: $(BIN)/.dev
	$(BIN)/python bench/model_latency.py

clean:
	rm -rf $(VENV) build *.egg-info
