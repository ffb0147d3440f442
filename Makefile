# splitenc_plugin: the README's two commands are `make demo` and `make test`.
# Both create (or refresh) .venv and install everything they need.

PYTHON_BIN ?= python3.11
VENV       := .venv
PY         := $(VENV)/bin/python
PIP        := $(PY) -m pip
DLIB       := disentanglement-lib==1.5
# Bumped when the install recipe changes, so existing .venvs are refreshed.
STAMP      := $(VENV)/.installed-v2
TF_EXTRA   ?= cpu

export DISENTANGLEMENT_LIB_DATA ?= $(CURDIR)/data

.PHONY: venv test demo bench clean

venv: $(STAMP)

$(STAMP): setup.py Makefile
	@command -v $(PYTHON_BIN) >/dev/null 2>&1 || { \
	  echo "error: $(PYTHON_BIN) not found. splitenc_plugin needs Python 3.11 (TF 2.15 has no wheels for newer Pythons): install python3.11, or run make PYTHON_BIN=/path/to/python3.11"; exit 1; }
	@$(PYTHON_BIN) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { \
	  echo "error: $(PYTHON_BIN) is not Python 3.11 (it is $$($(PYTHON_BIN) --version 2>&1)). Set PYTHON_BIN to a Python 3.11 interpreter."; exit 1; }
	test -x $(PY) || $(PYTHON_BIN) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip wheel "setuptools<81"
	# dlib's metadata pins tensorflow-probability==0.7 (unusable on TF 2.15):
	# install it without its pins; setup.py lists its real runtime needs.
	$(PIP) install --quiet --no-deps $(DLIB)
	$(PIP) install --quiet -e ".[$(TF_EXTRA),test]"
	@echo "(pip's note that disentanglement-lib wants tensorflow-probability==0.7 is expected: see setup.py)"
	# Editable installs do not copy the start-up hook's .pth: place it.
	$(PY) -m splitenc_plugin.compat.hookfile
	touch $(STAMP)

# --durations: every run (CI's too) names its slowest tests, the data for keeping it short.
test: venv
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -ra -n 2 --dist loadgroup --durations=25 tests

demo: venv
	$(PY) bin/demo.py

# The performance tables of the README, each benchmark with its defaults (quiet
# machine; ~55 min in all).
bench: venv
	for b in input_pipeline split_encoder dsprites_gen mig_eval lean_data train_throughput job_parallelism deterministic; do \
	  $(PY) -m bench.$$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
