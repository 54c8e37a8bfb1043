# regsweep: `make install`, `make test`, then `make sweep-dropout` (SMOKE=1 for an offline smoke run).
PYTHON ?= python3
REGSWEEP ?= $(PYTHON) -m regsweep
SMOKE_FLAG = $(if $(filter 1 true yes,$(SMOKE)),--smoke,)
RESULTS ?= results
SWEEPS = dropout norm depth pooling interactions regularizers combined

.PHONY: install test bench bench-quick $(addprefix sweep-,$(SWEEPS)) validate-sweeps

# torch first: 2.13.0 comes from local disk here; a user's own (CUDA) build is kept as it is.
install:
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install torch==2.13.0
	$(PYTHON) -m pip install -e ".[dev]"

test:
	$(PYTHON) -m pytest -q

bench:
	$(PYTHON) bench/epoch_throughput.py

bench-quick:
	$(PYTHON) bench/epoch_throughput.py --quick

# One target per study in the seed journals: `make sweep-norm`, `SMOKE=1 make sweep-norm`, ...
$(addprefix sweep-,$(SWEEPS)): sweep-%:
	$(REGSWEEP) run sweeps/$*.yaml $(SMOKE_FLAG) --fresh --results $(RESULTS)

validate-sweeps:
	for spec in sweeps/*.yaml; do $(REGSWEEP) validate $$spec || exit 1; done
