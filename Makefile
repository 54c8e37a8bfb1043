# regsweep: `make install`, `make test`, then `make sweep-dropout` (SMOKE=1 for an offline smoke run).
PYTHON ?= python3
REGSWEEP ?= $(PYTHON) -m regsweep
SMOKE_FLAG = $(if $(filter 1 true yes,$(SMOKE)),--smoke,)
RESULTS ?= results
SWEEPS = dropout norm depth pooling interactions regularizers combined resmlp convlstm
SMOKE_SUFFIX = $(if $(filter 1 true yes,$(SMOKE)),-smoke,)
# EXECUTOR=local runs the trials in worker processes on this machine, without Ray (README: --executor local).
EXECUTOR_FLAG = $(if $(EXECUTOR),--executor $(EXECUTOR),)

CLUSTER ?= cluster.yaml
SWEEP ?= dropout
STORAGE ?= s3://YOUR-BUCKET/regsweep
MLFLOW_PORT ?= 5000
MLFLOW_BACKEND ?= sqlite:///mlruns/mlflow.db
MLFLOW_ARTIFACTS ?= mlruns/artifacts
# MLflow 3's server also starts a job runner for its GenAI features: seven more processes, each importing MLflow.
# regsweep only tracks runs; MLFLOW_JOBS=true starts them anyway.
MLFLOW_JOBS ?= false

.PHONY: install test bench bench-quick $(addprefix sweep-,$(SWEEPS)) $(addprefix report-,$(SWEEPS)) \
	validate-sweeps mlflow-ui mlflow-server cluster-sweep

# torch first: 2.13.0 comes from local disk here; a user's own (CUDA) build is kept as it is.
install:
	$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install torch==2.13.0
	$(PYTHON) -m pip install -e ".[dev]"

# Two workers: the Ray tests (marked `ray`) in order on one, the others beside them (tests/conftest.py).
test:
	$(PYTHON) -m pytest -q -n 2 --dist loadgroup

BENCHES = epoch_throughput tracking_overhead leaderboard_scale overhead search_efficiency scale

# Every benchmark, side by side figures; `bench-quick` runs each in its quick mode (< 3 minutes each).
bench:
	for b in $(BENCHES); do $(PYTHON) bench/$$b.py || exit 1; done

bench-quick:
	for b in $(BENCHES); do $(PYTHON) bench/$$b.py --quick || exit 1; done

# One target per study in the seed journals: `make sweep-norm`, `SMOKE=1 make sweep-norm`, ...
$(addprefix sweep-,$(SWEEPS)): sweep-%:
	$(REGSWEEP) run sweeps/$*.yaml $(SMOKE_FLAG) $(EXECUTOR_FLAG) --fresh --results $(RESULTS)

# The experiment journal of a sweep that ran: reports/NAME/journal.md and its figures.
$(addprefix report-,$(SWEEPS)): report-%:
	$(REGSWEEP) report $*$(SMOKE_SUFFIX) --results $(RESULTS)

validate-sweeps:
	for spec in sweeps/*.yaml; do $(REGSWEEP) validate $$spec || exit 1; done

# The embedded store every sweep logs to by default, in the browser at http://127.0.0.1:$(MLFLOW_PORT).
mlflow-ui:
	mkdir -p mlruns
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=$(MLFLOW_JOBS) $(PYTHON) -m mlflow ui --backend-store-uri $(MLFLOW_BACKEND) \
		--host 127.0.0.1 --port $(MLFLOW_PORT)

# A shared tracking server on loopback (reach it through SSH port forwarding). MLFLOW_BACKEND may be
# postgresql://user@host/db; the password comes from the environment or ~/.pgpass, never from here.
mlflow-server:
	mkdir -p mlruns
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=$(MLFLOW_JOBS) $(PYTHON) -m mlflow server --host 127.0.0.1 --port $(MLFLOW_PORT) \
		--backend-store-uri $(MLFLOW_BACKEND) --artifacts-destination $(MLFLOW_ARTIFACTS)

# A sweep on the cluster of `ray up cluster.yaml`: runs on the head, streams the live view and the
# leaderboard to this terminal; results and checkpoints on shared storage, MLflow on the head's loopback.
cluster-sweep:
	ray exec $(CLUSTER) "cd ~/regsweep && MLFLOW_TRACKING_URI=http://127.0.0.1:5000 \
		python3 -m regsweep run sweeps/$(SWEEP).yaml --storage $(STORAGE) --fresh $(SMOKE_FLAG)"
