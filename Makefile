# The course's commands. `make lab` opens the course; `make test` runs everything CI runs.
# Both create the virtual environment first when it is missing or out of date.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
# Folders of notebooks that strict nbval checks (only those that exist, so a fresh checkout still works).
NBVAL_DIRS := $(wildcard notebooks solutions)
SOLUTIONS := $(sort $(wildcard solutions/*.ipynb))
# Tests and stored outputs use one CPU thread per notebook kernel: `make test` runs two notebooks at once
# on the 2-core reference machine, and two threads each would oversubscribe it (tiny models then run up
# to 9x slower while threads spin). `make lab` leaves torch its default threads.
test unit nbval sync execute: export OMP_NUM_THREADS = 1
export PYTHONHASHSEED := 0
# Notebook kernels draw inline so that figures are stored as images; unit tests use Agg (conftest.py).
export MPLBACKEND := module://matplotlib_inline.backend_inline

.PHONY: help venv trust lab test unit nbval sync exercises execute bench ablation kvbench summarise-bench detection-ablation ner-bench generation-bench explain-bench site browser-test constraints clean

help:
	@echo "make lab        set up the environment and open JupyterLab on the first lesson (serving the course root)"
	@echo "make test       set up the environment and run every test (what CI runs)"
	@echo "make exercises  regenerate exercises/ from solutions/"
	@echo "make execute    re-run notebooks and solutions in place, storing fresh outputs (NB=path for one)"
	@echo "make bench      run the attention benchmark on this machine's device"
	@echo "make ablation   re-run the vision ablation (about 20 minutes) into benchmarks/results/"
	@echo "make kvbench    lesson 17's KV-cache benchmark; make summarise-bench: lesson 11's models over 3 seeds"
	@echo "make detection-ablation  lesson 14's detector necks and keypoint heads over 3 seeds (about 20 minutes)"
	@echo "make ner-bench, make generation-bench: lessons 10 and 15's longer runs"
	@echo "make explain-bench  lesson 18's counter-tests: attention across 4 seeds and adversarial models"
	@echo "make site       build the course's static website from the stored outputs into build/site/"
	@echo "make browser-test  every lesson's explorers in JupyterLab in headless Chromium (screenshots in build/browser/)"

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[lab,test,instructor,site]"
	touch $(STAMP)

venv: $(STAMP)

# Trusted notebooks show their stored widgets and progress bars as they looked when executed (an untrusted
# one shows their text). The signatures live in the user's Jupyter data folder, not in the repository.
trust: $(STAMP)
	$(BIN)/jupyter trust $(NOTEBOOKS) $(SOLUTIONS)

# Serve the whole course (so exercises/ and solutions/ are reachable) and open lesson 00.
# LAB_FLAGS passes more options, e.g. make lab LAB_FLAGS="--no-browser --port 8890".
LAB_FLAGS ?=
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)
lab: trust
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" $(ROOT_FLAG) $(LAB_FLAGS) notebooks/00_setup_and_tour.ipynb

# Results that lessons share go to a scratch folder during the tests; afterwards the tests check that
# running every lesson changed no file of the working tree.
test: export COURSE_RESULTS_DIR = $(CURDIR)/.test-results
test: $(STAMP)
	rm -rf .test-results
	@git status --porcelain 2>/dev/null > .test-results.before || true
	$(BIN)/python -m pytest -p no:cacheprovider -n 2 --dist loadfile tests $(NBVAL_DIRS) \
		--nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg --durations=25
	@git status --porcelain 2>/dev/null | diff .test-results.before - \
		|| { echo "running the tests changed the files above: a lesson or test writes into the repository"; exit 1; }
	@rm -f .test-results.before

unit: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider -n 2 tests

nbval: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg $(or $(NB),$(NBVAL_DIRS))

sync: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider tests/test_exercises.py

exercises: $(STAMP)
	$(BIN)/python tools/make_exercises.py

# The regeneration command: the only one that writes the committed copies of shared results.
execute: export COURSE_RESULTS_DIR = $(CURDIR)/notebooks/results
execute: $(STAMP)
	$(BIN)/python tools/execute_notebooks.py $(or $(NB),$(NOTEBOOKS) $(SOLUTIONS))

# The committed CPU results were taken with BENCH_ARGS="--threads 1 --clock cpu" (robust on a shared machine);
# on a GPU: make bench BENCH_ARGS="--device cuda".
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python benchmarks/attention_bench.py $(BENCH_ARGS)

# The committed table (benchmarks/results/vision_ablation.csv) was computed this way, on one thread.
ablation: $(STAMP)
	$(BIN)/python benchmarks/vision_ablation.py --threads 1

# Lesson 17's KV-cache benchmark (committed: benchmarks/results/kv_cache_cpu.csv, one thread, CPU-time clock);
# on a GPU: make kvbench KVBENCH_ARGS="--device cuda --clock wall".
KVBENCH_ARGS ?=
kvbench: $(STAMP)
	$(BIN)/python benchmarks/kv_cache_bench.py --threads 1 --clock cpu $(KVBENCH_ARGS)

# Lesson 10's three taggers over 3 seeds, and the BiLSTM with 4x the budget (about 10 minutes;
# benchmarks/results/ner_models.csv).
ner-bench: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/ner_models.py

# Lesson 18's tagger over 4 seeds and 3 adversarial models (Wiegreffe & Pinter 2019; about 3 minutes, one thread;
# benchmarks/results/explanation_counter_tests.csv).
explain-bench: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/explanation_counter_tests.py --threads 1

# Lesson 11's models over 3 seeds and two budgets (about 20 minutes; benchmarks/results/summarise_models.csv).
summarise-bench: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/summarise_models.py

# Lesson 14's detector necks and keypoint heads over 3 seeds (about 20 minutes, one thread;
# benchmarks/results/detection_ablation.csv).
detection-ablation: $(STAMP)
	$(BIN)/python benchmarks/detection_ablation.py --threads 1

# Lesson 15's GAN with and without self-attention (2 seeds) and RAM against its controls (about 20 minutes,
# one thread; benchmarks/results/generation_glimpses.csv).
generation-bench: $(STAMP)
	$(BIN)/python benchmarks/generation_glimpses.py --threads 1

# The course as a static website (Sphinx, myst-nb, the book theme), from the outputs stored in the notebooks:
# nothing executes. Writes build/site/ (index.html) and prints where it landed; SITE_ARGS passes options
# (e.g. SITE_ARGS="-v" for Sphinx's progress).
SITE_ARGS ?=
site: $(STAMP)
	$(BIN)/python tools/build_site.py --out build/site $(SITE_ARGS)

# Every lesson's explorers in a real browser (tests_browser/): JupyterLab started as `make lab` starts it (on a
# copy of the tree, loopback, no token), in Debian's headless Chromium driven by Playwright, two lessons at a time.
# Needs `apt-get install chromium fonts-noto-cjk` (.ci/run installs them as root); skips, saying why, without
# them. Playwright's own browser download is never used. Screenshots and logs: build/browser/.
BROWSER_STAMP := $(VENV)/.browser-installed
$(BROWSER_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[browser]"
	touch $(BROWSER_STAMP)

browser-test: $(BROWSER_STAMP)
	rm -rf build/browser
	$(BIN)/python -m pytest -p no:cacheprovider -n 2 tests_browser -rs --durations=20

constraints: $(STAMP)
	(echo "# Exact versions the course was tested with (pip install -c constraints.txt). Regenerate: make constraints"; \
	 $(BIN)/python -m pip freeze --exclude-editable | sed 's/+cpu//') > constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .test-results .test-results.before
