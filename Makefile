# prunebench: `make demo` runs the main job, `make test` ruff, mypy and the test suite, `make check`
# ruff, mypy and the fast tests (not marked slow), `make bench` benchmarks/.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PRUNEBENCH_CACHE ?= $(CURDIR)/.cache/prunebench

.PHONY: setup demo test check bench clean chromium

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test,distributed,nlp,edge]'
	$(PY) -m prunebench.engines.ov_ext   # builds the openvino engine's C++ sparse operation (g++)
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m prunebench study default

test: $(STAMP) chromium
	$(PY) -m ruff check src tests
	$(PY) -m mypy
	PRUNEBENCH_REQUIRE_BROWSER=1 PRUNEBENCH_REQUIRE_LITERT=1 $(PY) -m pytest -q

# The quick loop while editing: every test but those marked `slow` (child processes, training,
# studies, whole-model compiles); `make test` still runs everything.
check: $(STAMP)
	$(PY) -m ruff check src tests
	$(PY) -m mypy
	$(PY) -m pytest -q -m "not slow"

# The report tests open the HTML page in headless Chromium (Debian's package; needs root the
# first time). Installed only when missing.
chromium:
	@test -x /usr/bin/chromium || { \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .cache runs
