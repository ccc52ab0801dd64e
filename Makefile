# Two entry points a newcomer needs: `make demo` and `make test`. Each creates .venv and
# installs what it needs on a fresh machine (Python 3.11 with pip and venv).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck bench fixtures clean console screenshots

# setup.py and the C kernel too: an edited kernel must be rebuilt, not run stale.
$(VENV)/.installed: pyproject.toml setup.py gateway/_fir.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -U pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[simulator]'
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/voicegw demo --out demo-call.wav

test: $(VENV)/.installed-test lint typecheck
	$(BIN)/pytest -q -n auto

lint: $(VENV)/.installed-test
	$(BIN)/ruff check gateway voicegw_agents tests benchmarks

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy --strict gateway voicegw_agents benchmarks --exclude benchmarks/pipecat

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/audio_quality.py
	$(BIN)/python benchmarks/carrier_frame_cost.py
	$(BIN)/python benchmarks/tool_dispatch.py
	$(BIN)/python benchmarks/live_reconnect.py
	$(BIN)/python benchmarks/call_records.py
	$(BIN)/python benchmarks/metrics_cost.py

# Rebuilds the web console (console/src -> gateway/console/static, committed so a Python-only
# install has it); needs Node 20.19+ and npm.
console:
	cd console && npm ci --no-audit --no-fund && npm run build

# Screenshots of each console page from a real run (docs/screenshots/); needs Debian's chromium.
screenshots: $(VENV)/.installed-test
	$(BIN)/python benchmarks/console_screenshots.py --out docs/screenshots

# Regenerates the committed speech fixtures; needs Debian's flite, espeak-ng and sox.
fixtures:
	bash gateway/assets/speech/make_speech.sh

clean:
	rm -rf $(VENV) build dist *.egg-info demo-call.wav
