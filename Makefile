# Two commands on a fresh machine with Python 3.11+ and make:
#   make book   install into .venv, execute the notebooks (embedded mnist5k benchmark), build the site
#   make test   install into .venv, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export ASHLIB_CACHE ?= $(CURDIR)/.cache
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
RUN_DIR ?= book/run

.PHONY: book notebooks site test install clean
book: notebooks site

install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[book,test]"
	touch $@

notebooks: install
	mkdir -p $(RUN_DIR)
	@for nb in $(NOTEBOOKS); do \
	  echo "== executing $$nb"; \
	  $(BIN)/papermill --cwd notebooks --progress-bar $$nb $(RUN_DIR)/$$(basename $$nb) || exit 1; \
	done

site: install
	$(BIN)/jupyter-book build book --warningiserror --keep-going
	@echo "Site: $(CURDIR)/book/_build/html/index.html"

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf book/_build $(RUN_DIR)
