# Two commands for a newcomer: `make up` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export GAUNTLET_HOME ?= $(CURDIR)/.gauntlet
export DAGSTER_HOME ?= $(GAUNTLET_HOME)/dagster

.PHONY: up up-postgres test bench venv clean-state

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

up: $(STAMP)
	$(BIN)/python -m scripts.up

# The same pipeline in the production environment with every store on one PostgreSQL server
# (GAUNTLET_PG_SERVER, default the local server as user postgres); see README "Scaling out".
up-postgres: $(STAMP)
	$(BIN)/python -m scripts.up --postgres

# Where the suite's temporary files go: in memory (/dev/shm) when it has 4 GiB free, else the
# system's. A run writes about 1 GB of SQLite instances, artifacts and logs, and every SQLite
# commit waits on the disk; in memory the same tests take 10-20 % less wall time.
TEST_TMPDIR ?= $(or $(shell df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 && $$4 > 4194304 {print "/dev/shm"}'),$(TMPDIR),/tmp)

# Two workers, one test file each at a time (module-scoped fixtures stay in one process): the
# end-to-end tests spend most of their time waiting on the processes they start.
test: $(STAMP)
	TMPDIR=$(TEST_TMPDIR) $(BIN)/python -m pytest -n 2 --dist loadfile

bench: $(STAMP)
	$(BIN)/python -m bench.run

# A soak: 200 trials arrive while run workers are SIGKILLed; reports lost and duplicated
# trials and retries in bench/chaos_results.json (several minutes; not part of `make test`).
.PHONY: chaos
chaos: $(STAMP)
	$(BIN)/python -m bench.chaos

clean-state:
	rm -rf $(GAUNTLET_HOME)
