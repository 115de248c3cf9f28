# Two commands do all set-up: `make lab` (start JupyterLab offline) and `make test` (every check).
# `make lab` creates .venv with the learner set (requirements.txt, a full lock); `make test` adds the developer
# set (requirements-dev.txt). Both locks come from requirements*.in through pip-tools; Python 3.11 or newer.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LAB_STAMP := $(VENV)/.installed-lab
STAMP := $(VENV)/.installed-dev
NOTEBOOKS := $(wildcard notebooks/*.ipynb)
WORKSHOP_TARGET ?= offline
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
# No "get notified about Jupyter news?" popup and no update check: a learner opens the notebooks, nothing else.
# JupyterLab reads settings overrides from its environment's share/jupyter/lab/settings (jupyter/overrides.json).
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings
LAB_QUIET := --LabApp.news_url=None --LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate

.PHONY: learner-env lab test lint unit notebooks nb-calm nb-crowded nb-crowded-alice nb-reruns nb-slips rehearse diagrams bench preflight clean

$(LAB_STAMP): requirements.txt pyproject.toml jupyter/overrides.json
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed, found " + sys.version.split()[0] + ": set PYTHON=python3.12 (or similar)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@mkdir -p $(LAB_SETTINGS) && cp jupyter/overrides.json $(LAB_SETTINGS)/overrides.json
	@touch $@

$(STAMP): $(LAB_STAMP) requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# The learner set alone, no JupyterLab started: what a devcontainer (Codespaces, VS Code) runs once it is created.
learner-env: $(LAB_STAMP)

lab: $(LAB_STAMP)
	@echo "Starting JupyterLab on notebooks/ with WORKSHOP_TARGET=$(WORKSHOP_TARGET). Open the http://127.0.0.1 URL printed below; Ctrl-C stops it."
	WORKSHOP_TARGET=$(WORKSHOP_TARGET) $(BIN)/jupyter lab --notebook-dir=. --LabApp.default_url=/lab/tree/notebooks \
		--ip=127.0.0.1 --no-browser $(ROOT_FLAG) $(LAB_QUIET)

test: lint unit notebooks

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(if $(NOTEBOOKS),$(BIN)/nbstripout --keep-output --keep-count --verify $(NOTEBOOKS))

# Before class: Python, packages, the target; offline the runtime, on AWS credentials, region and permissions.
# WORKSHOP_TARGET=aws EXPECT_REGION=eu-west-1 make preflight checks a real account against the class's region;
# CLASS_SIZE=30 also checks its Lambda concurrency against thirty learners bursting at once.
preflight: $(LAB_STAMP)
	WORKSHOP_TARGET=$(WORKSHOP_TARGET) $(BIN)/python -m taskflow.preflight $(if $(EXPECT_REGION),--expect-region $(EXPECT_REGION)) $(if $(CLASS_SIZE),--class-size $(CLASS_SIZE))

# Every test runs offline: no profile, no endpoint, no learner suffix, calm weather, no class settings unless a
# target says otherwise.
OFFLINE := env -u AWS_PROFILE -u AWS_ENDPOINT_URL WORKSHOP_TARGET=offline WORKSHOP_LEARNER= WORKSHOP_WEATHER= \
	WORKSHOP_PRINCIPAL= WORKSHOP_BOUNDARY=
NBVAL := $(BIN)/pytest -p no:cacheprovider --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg

unit: $(STAMP)
	$(OFFLINE) $(BIN)/pytest -m "not slow" tests --ignore=tests/test_notebook_reruns.py --ignore=tests/test_learner_slips.py \
		--ignore=tests/test_learner_install.py --ignore=tests/test_learner_policy_needed.py

# The notebooks, compared strictly with their committed outputs: as a learner runs them (calm), and under AWS
# weather in a crowded class account, unsuffixed and as learner alice; and re-run in one kernel under weather.
# And a learner's usual slips, each in a real kernel, then the learner set alone in a clean environment.
# They mostly wait (visibility timeouts, late metrics), so the runs go side by side.
notebooks: $(STAMP)
	@$(MAKE) --no-print-directory -j5 -O nb-calm nb-crowded nb-crowded-alice nb-reruns nb-slips

# Calm, then the three days as learner alice: each statement of the learner policy is needed by a named step.
nb-calm: $(STAMP)
	$(OFFLINE) $(NBVAL) $(NOTEBOOKS)
	$(OFFLINE) $(BIN)/pytest -p no:cacheprovider -s tests/test_learner_policy_needed.py

nb-crowded: $(STAMP)
	$(OFFLINE) WORKSHOP_WEATHER=crowded $(NBVAL) $(NOTEBOOKS)

# As learner alice in a class account: her calls signed as an IAM user holding policies/learner.json, her roles
# carrying the class boundary, so the three days prove the learner policy is enough.
nb-crowded-alice: $(STAMP)
	$(OFFLINE) WORKSHOP_WEATHER=crowded WORKSHOP_LEARNER=alice WORKSHOP_PRINCIPAL=learner \
		WORKSHOP_BOUNDARY=taskflow-boundary-alice $(NBVAL) $(NOTEBOOKS)

nb-reruns: $(STAMP)
	$(OFFLINE) $(BIN)/pytest -p no:cacheprovider tests/test_notebook_reruns.py

nb-slips: $(STAMP)
	$(OFFLINE) $(BIN)/pytest -p no:cacheprovider tests/test_learner_slips.py tests/test_learner_install.py

rehearse: $(LAB_STAMP)
	mkdir -p build
	WORKSHOP_TARGET=offline $(BIN)/jupyter nbconvert --to html --execute --output-dir build $(NOTEBOOKS)
	@echo "Executed notebooks are in build/*.html"

diagrams: $(STAMP)
	$(BIN)/python diagrams/generate.py

bench: $(STAMP)
	$(BIN)/python -m benchmarks.offline_runtime
	$(BIN)/python -m benchmarks.pipeline
	$(OFFLINE) $(BIN)/pytest tests -m slow -s -q

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache
