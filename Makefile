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
# The corrections tests start their own PostgreSQL server from Debian's postgresql binaries.
$(BIN)/.dev: $(BIN)/.serve
	$(BIN)/pip install -q -e '.[train,test]'
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium chromium-driver)
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq postgresql)
	touch $@

# http://127.0.0.1:8000 with the shipped model; API docs at /docs. `make run PORT=8765 HOST=0.0.0.0`
# serves elsewhere (HOST=0.0.0.0 reaches other machines: only where that is wanted).
HOST ?= 127.0.0.1
PORT ?= 8000
run: $(BIN)/.serve
	$(BIN)/emnist-draw serve --host $(HOST) --port $(PORT)

test: $(BIN)/.dev
	$(BIN)/python -m pytest -q

# The Docker image built from the Dockerfile and run for real (tests/docker/run.sh; as root, a few
# minutes): not in `make test`, which needs no root, no Docker engine and no daemon of its own.
.PHONY: docker-test
docker-test: $(BIN)/.dev
	command -v dockerd >/dev/null && command -v debootstrap >/dev/null \
		|| (apt-get update -qq && apt-get install -y -qq docker.io debootstrap)
	tests/docker/run.sh

# Retrains the shipped model from ../shared/data and exports it (about 100 minutes on 2 cores):
# 30 epochs with drawing augmentation; 4 more with the UNIPEN tune writers' ink (rendered by
# emnist_draw/preprocess.py, given three times for weight) added, augmented too; then 3 short
# epochs on the plain images plus the plain ink.
# --precision auto: bf16 where the CPU has AVX512-BF16 or AMX-BF16 (or on a GPU with bf16), where
# it halves the time; fp32 elsewhere (emulated bf16 is slower and rounds differently). Each stage
# says which it chose on its first line ("precision: ...").
TRAIN_1 := emnist-draw train --preset medium --precision auto --out runs/medium --epochs 30
INK := runs/unipen/unipen-tune-ok-images-idx3-ubyte.gz
TRAIN_INK := emnist-draw data unipen --out runs/unipen
INK3 := --extra $(INK) --extra $(INK) --extra $(INK)
TRAIN_2 := emnist-draw train --preset medium --init runs/medium/last.pt --out runs/medium-ink --epochs 4 --lr 1e-3 --precision auto $(INK3)
TRAIN_3 := emnist-draw train --preset medium --init runs/medium-ink/last.pt --out runs/medium-finetune --epochs 3 --lr 3e-4 --no-augment --precision auto $(INK3)
# Last, the image reader's cut network, then the string reader's whole-character model and its gate, which
# reads the new CNN's outputs on the cut pieces.
train: $(BIN)/.dev
	$(BIN)/$(TRAIN_1)
	$(BIN)/$(TRAIN_INK)
	$(BIN)/$(TRAIN_2)
	$(BIN)/$(TRAIN_3)
	$(BIN)/emnist-draw export runs/medium-finetune/last.pt --out emnist_draw/models/emnist-balanced-medium.onnx \
		--command "$(TRAIN_1) && $(TRAIN_INK) && $(TRAIN_2) && $(TRAIN_3)"
	$(BIN)/emnist-draw export runs/medium-finetune/last.pt --out emnist_draw/models/emnist-balanced-medium-int8.onnx \
		--int8 --command "$(TRAIN_1) && $(TRAIN_INK) && $(TRAIN_2) && $(TRAIN_3)"
	$(BIN)/python -m emnist_draw.train_cuts
	$(BIN)/python -m emnist_draw.train_segmentation

# Benchmarks (never part of `make test`): each prints its tables and writes build/bench/NAME.json.
# About 25 minutes in all on the 2-core machine; see README, "Performance".
BENCH_JSON = --json build/bench/$(1).json
bench: $(BIN)/.dev
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	mkdir -p build/bench
	$(BIN)/python bench/model_latency.py $(call BENCH_JSON,model_latency)
	$(BIN)/python bench/unipen_eval.py
	$(BIN)/python bench/calibration.py $(call BENCH_JSON,calibration)
	$(BIN)/python bench/status.py $(call BENCH_JSON,status)
	$(BIN)/python bench/read_strings.py --part measure $(call BENCH_JSON,read_strings)
	$(BIN)/python bench/read_strings.py --part tune --speed $(call BENCH_JSON,read_strings_speed)
	$(BIN)/python bench/read_strings.py --composed 600 --images $(call BENCH_JSON,read_strings_composed)
	$(BIN)/python bench/read_strings.py --part tune --speed --images $(call BENCH_JSON,read_strings_pictures_speed)
	$(BIN)/python bench/read_http.py $(call BENCH_JSON,read_http)
	$(BIN)/python bench/profile_request.py $(call BENCH_JSON,profile_request)
	$(BIN)/python bench/startup.py $(call BENCH_JSON,startup)
	$(BIN)/python bench/versus.py $(call BENCH_JSON,versus)
	$(BIN)/python bench/hostile.py $(call BENCH_JSON,hostile)
	$(BIN)/python bench/http_load.py $(call BENCH_JSON,http_load)
	$(BIN)/python bench/memory.py $(call BENCH_JSON,memory)
	$(BIN)/python bench/footprint.py $(call BENCH_JSON,footprint)
	$(BIN)/python bench/training_stats.py $(call BENCH_JSON,training_stats)
	$(BIN)/python bench/training_step.py $(call BENCH_JSON,training_step)

clean:
	rm -rf $(VENV) build *.egg-info
