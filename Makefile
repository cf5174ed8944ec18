# Two entry points for a fresh machine: `make demo` (the main job) and `make test`.
# The venv gets the CPU build of torch through an exact pin; the package itself accepts a range,
# so GPU users install it next to whatever CUDA build of torch they already have.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PIN ?= torch==2.13.0
RECIPE ?= speech_tiny

.PHONY: setup demo test bench clean

$(VENV)/.installed: pyproject.toml setup.py
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[dev,ssl,augment,cloud]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/soundstage run $(RECIPE)

test: setup
	$(PY) -m pytest -q

clean:
	rm -rf runs build dist *.egg-info
