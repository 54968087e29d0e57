# Two entry points that work on a fresh machine: `make run` and `make test`.
PY ?= python3.11
# Extra pip arguments for torch. Left empty, pip takes torch==2.13.0 from its configured sources
# (on our machines a local CPU wheel). Elsewhere, point it at a CPU-only wheel index to avoid the
# multi-GB CUDA build, e.g. make TORCH_PIP_ARGS="--index-url <cpu wheel index>" run
TORCH_PIP_ARGS ?=
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-deps soak gpu bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned, so nothing later pulls a CUDA build
	$(BIN)/pip install -q $(TORCH_PIP_ARGS) torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	mkdir -p inbox outbox
	$(BIN)/heygemd --config config.toml run

# Tests run side by side in TEST_WORKERS processes (pytest-xdist): many wait on daemons, workers
# and brokers rather than compute, so three fit two cores (on two cores: 824 s serial, 469 s in
# two, 357 s in three). A long test is taken by whichever process is free (worksteal).
TEST_WORKERS ?= 3

test: $(STAMP) test-deps
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal

# Real components the tests drive: headless Chromium and its driver (the web page test) and
# systemd-analyze (the units' checks), redis-server (the farm's broker, started by its tests).
# Room to write: a run's folders peak at about 1.3 GB in three processes (passing tests' folders
# are removed).
test-deps:
	.ci/need-packages chromium:chromium chromedriver:chromium-driver systemd-analyze:systemd redis-server:redis-server
	.ci/need-disk 3000

lint: $(STAMP)
	$(BIN)/ruff check heygemd tests bench
	$(BIN)/mypy heygemd

soak: $(STAMP) test-deps
	$(BIN)/python -m pytest -q -m soak

# On a machine with CUDA: CPU-vs-CUDA agreement tests, then a whole render on both devices.
gpu: $(STAMP)
	$(BIN)/python -m pytest -q -m gpu tests/gpu
	$(BIN)/python bench/compare_devices.py --clips th08 th05

bench: $(STAMP)
	set -e; for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b; done

clean:
	rm -rf $(VENV) .heygemd
