# The two commands a user needs: `make demo` and `make test`. Both create .venv and install the pinned
# requirements on first use (torch==2.13.0 is the CPU build on these machines).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all
# GPU jobs queue behind each other through this resource; on a CPU-only machine let two run at once.
GPUS ?= $(shell nvidia-smi -L 2>/dev/null | wc -l | awk '{print ($$1 > 0) ? $$1 : 2}')
SNAKEMAKE := PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake
# Another study: `make demo CONFIG=config/paper.yaml` (likewise report, dryrun); the report goes beside its results.
CONFIG ?=
CONFIG_ARGS := $(if $(CONFIG),--configfile $(CONFIG))
REPORT = $(shell $(BIN)/python -c "import yaml,sys; print(yaml.safe_load(open(sys.argv[1])).get('results','results'))" \
	$(or $(CONFIG),config.yaml) 2>/dev/null || echo results)/report.html

.PHONY: demo test test-torch test-pins lint dryrun report bench clean-venv

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(SNAKEMAKE) --profile profiles/local $(CONFIG_ARGS) --cores $(CORES) --resources gpu=$(GPUS)
	$(SNAKEMAKE) --profile profiles/local $(CONFIG_ARGS) --report $(REPORT)
	@echo "Done. Tables: $(dir $(REPORT))summary-*/tables/README.md; report: open $(REPORT) in a browser."

report: $(STAMP)
	$(SNAKEMAKE) --profile profiles/local $(CONFIG_ARGS) --report $(REPORT)

test: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q tests

# On a GPU machine: our training step and decoding against Seq2SeqTrainer and generate (benchmarks/README.md).
bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench --out benchmarks/record.json

# The speed, benchmark and training tests under other versions of torch, transformers and the like, in a venv of
# its own: a GPU machine's environment may differ from our pins, and torch.compile's graph breaks (and what
# transformers traces) differ between versions. PyPI's torch is the CUDA build (several GB with its libraries);
# these tests run on the CPU. Examples:
#   make test-torch TORCH=2.11.0
#   make test-pins PINS="torch==2.11.0 transformers==5.17.0 huggingface_hub==1.33.0"
TORCH ?= 2.11.0
PINS ?= torch==$(TORCH)
PINS_VENV := .venv-pins-$(shell echo '$(PINS)' | md5sum | cut -c1-8)
PINNED_NAMES := $(shell echo '$(PINS)' | tr ' ' '\n' | sed 's/[=<>!~].*//; s/[-_]/[-_]/g' | paste -sd'|' -)
test-torch: test-pins
test-pins:
	test -x $(PINS_VENV)/bin/python || $(PYTHON) -m venv $(PINS_VENV)
	$(PINS_VENV)/bin/python -m pip install --quiet --upgrade pip setuptools
	grep -v -i -E '^($(PINNED_NAMES))==' requirements.txt > $(PINS_VENV)/requirements.txt
	$(PINS_VENV)/bin/python -m pip install --quiet $(PINS) -r $(PINS_VENV)/requirements.txt
	$(PINS_VENV)/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PINS_VENV)/bin/python -m pip list 2>/dev/null | grep -i -E '^($(PINNED_NAMES)) '
	PATH=$(CURDIR)/$(PINS_VENV)/bin:$$PATH $(PINS_VENV)/bin/python -m pytest -q -p no:cacheprovider \
		tests/test_speed.py tests/test_benchmark.py tests/test_finetune.py tests/test_resume.py

lint: $(STAMP)
	$(SNAKEMAKE) --lint

dryrun: $(STAMP)
	$(SNAKEMAKE) --profile profiles/local $(CONFIG_ARGS) -n --quiet rules

clean-venv:
	rm -rf $(VENV)

# The conda environment of `snakemake --sdm conda`: requirements.txt's pins, written out in the file itself, since
# Snakemake copies it under .snakemake/conda/ before conda reads it (a relative `-r` would point nowhere).
# tests/test_dag.py checks that it matches requirements.txt.
envs/pipeline.yaml: requirements.txt
	printf '%s\n' "# Made by \`make envs/pipeline.yaml\` from requirements.txt: edit those pins, not these." \
		"# For \`snakemake --sdm conda\`; every rule runs its module from this checkout (cli.run_modules_from)." \
		"channels:" "  - conda-forge" "dependencies:" "  - python=3.11" "  - pip" "  - pip:" > $@
	sed 's/^/      - /' requirements.txt >> $@
