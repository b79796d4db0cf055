# Two commands on a fresh machine with Python 3.11+ and make:
#   make book   install into .venv, execute the notebooks (embedded mnist5k benchmark), build the site
#   make test   install into .venv, run the test suite
#   make lab    (a student) open an assignment in JupyterLab: make lab ASSIGNMENT=ash
# and a third check that CI runs after them:
#   make check-site   open the built site in headless Chromium (installs Debian's chromium if missing)
# Optional, before `make book`: `make fmnist` (Fashion-MNIST, for the book's fmnist columns).
# For developers: `make imports` draws the import graph (the science and the book machine) in build/.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export ASHLIB_CACHE ?= $(CURDIR)/.cache
PROFILE ?= embedded
RUN_DIR ?= runs/$(PROFILE)

.PHONY: book notebooks site test check-site chromium fmnist rehearse install clean lab imports
book: notebooks site

install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[book,test,classroom,cluster]"
	touch $@

notebooks: install
	$(BIN)/python -m ashlib run --profile $(PROFILE) --out $(RUN_DIR)

site: install
	$(BIN)/python -m ashlib book --run $(RUN_DIR)

# The tests, one worker per core (pytest-xdist), each file on one worker so that a file's module
# fixtures (a graded class, a fitted detector) are made once; plain `pytest` runs them in one process.
test: install
	$(BIN)/python -m pytest -n auto --dist loadfile

chromium:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver)

# A student's view: the student version of assignments/$(ASSIGNMENT) (written to student/ if missing)
# opened in JupyterLab.
ASSIGNMENT ?= ash
lab: install
	$(BIN)/python -m ashlib classroom lab $(ASSIGNMENT)

# Optional: Fashion-MNIST for the fmnist columns of the book (Debian's package, else a checked download).
fmnist: install
	@test -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) || \
	  $(BIN)/python -m ashlib fetch fmnist --no-progress

# The paper-scale profiles rehearsed on the CPU (fake data in the real layout, random weights; see
# ashlib/book/rehearsal.py), each run built into a site; the last build is replaced by `make book`.
REHEARSALS ?= cifar10 cifar100 imagenet
rehearse: install
	@for p in $(REHEARSALS); do \
	  $(BIN)/python -m ashlib run --profile $$p --rehearse --out runs/$$p-rehearsal && \
	  $(BIN)/python -m ashlib book --run runs/$$p-rehearsal || exit 1; \
	done

check-site: install chromium
	$(BIN)/python -m pytest site_tests

# The import graph: every module of ashlib in its subpackage, the science apart from the book machine
# (build/import_graph.dot, and .svg if Graphviz's `dot` is installed); fails on a science->book import.
imports: install
	$(BIN)/python tools/import_graph.py --out build/import_graph.dot

clean:
	rm -rf book/_build book/run runs
