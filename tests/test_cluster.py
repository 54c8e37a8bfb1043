"""cluster.yaml against Ray's own schema and our safety rules; a local multi-node cluster with
declared GPUs for spreading, packing and a node failure."""

import re
import threading
import time
from pathlib import Path

import pytest
import yaml

from regsweep._results import read_journal
from regsweep._sweep import start_sweep
from regsweep._validate import load_sweep

CLUSTER_YAML = Path(__file__).parent.parent / "cluster.yaml"


def test_cluster_yaml_validates_against_ray_autoscaler_schema():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(CLUSTER_YAML.read_text())
    validate_config(prepare_config(config))
    broken = yaml.safe_load(CLUSTER_YAML.read_text())
    broken["available_node_types"]["gpu_worker"]["max_worker"] = 3  # misspelt key
    with pytest.raises(Exception, match="max_worker"):
        validate_config(prepare_config(broken))


def test_cluster_yaml_is_safe_by_default():
    text = CLUSTER_YAML.read_text()
    config = yaml.safe_load(text)
    assert "0.0.0.0" not in text and "::/0" not in text
    rules = config["provider"]["security_group"]["IpPermissions"]
    assert [(r["FromPort"], r["ToPort"], r["IpProtocol"]) for r in rules] == [(22, 22, "tcp")]
    assert all(cidr["CidrIp"].endswith("/32") for r in rules for cidr in r["IpRanges"])
    head = " ".join(config["head_start_ray_commands"])
    workers = " ".join(config["worker_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head
    assert "RAY_AUTH_MODE=token" in head and "RAY_AUTH_MODE=token" in workers
    assert re.search(r"mlflow server --host 127\.0\.0\.1", head)
    assert any("auth_token" in target for target in config["file_mounts"])
    assert any(re.search(r"ray\[[a-z,]+\]==\d+\.\d+\.\d+", c) for c in config["setup_commands"])
    assert any("pip install" in c and "regsweep" in c for c in config["setup_commands"])
    assert config["available_node_types"]["head"]["resources"] == {"CPU": 0}


@pytest.fixture(scope="module")
def _cluster():
    """A head with no CPUs (like cluster.yaml's), started once for the module (15-20 s on two cores)."""
    import ray
    from ray.cluster_utils import Cluster

    from conftest import start_local_ray

    ray.shutdown()
    local = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    workers = []
    ray.init(address=local.address, log_to_driver=False, logging_level="ERROR")
    yield local, workers
    ray.shutdown()
    local.shutdown()
    start_local_ray()


@pytest.fixture
def cluster(_cluster):
    """The module's cluster with two live workers declaring one GPU each (a node a test killed is replaced)."""
    local, workers = _cluster
    workers[:] = [w for w in workers if w in local.worker_nodes]
    while len(workers) < 2:
        workers.append(local.add_node(num_cpus=4, num_gpus=1))
    local.wait_for_nodes()
    return local, workers


def max_overlap(intervals):
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def attempts(frame):
    """(node, start, end) of every trial attempt, from what the workers reported."""
    groups = frame.groupby(["trial_id", "node_id", "attempt_started_at"])["reported_at"].max()
    return [(node, start, end) for (_, node, start), end in groups.items()]


def test_trials_spread_over_nodes_and_pack_four_per_gpu(cluster, tmp_path, write_spec):
    # Placement is the point, not training: a trainable without torch spares each of the eight actors (on two
    # cores) torch's import. Its trials wait until eight have started, which only two GPUs packed four deep
    # can hold at once (short trials alone ended before the next actor was up, and all ran on one node).
    (tmp_path / "started").mkdir()
    spec = write_spec({
        "name": "packed", "trainable": "helpers.user_trainables:waits_for_company",
        "fixed": {"epochs": 3, "sleep": 0.1, "folder": str(tmp_path / "started"), "company": 8},
        "search_space": {"x": {"grid": [round(0.05 * i, 2) for i in range(12)]}},
        "resources": {"cpu": 0.5, "gpu": 0.25},
    })
    frame = start_sweep(load_sweep(spec), str(tmp_path / "results"), mlflow=False)
    assert frame["trial_id"].nunique() == 12 and set(frame["status"]) == {"completed"}
    spans = attempts(frame)
    nodes = {node for node, _, _ in spans}
    worker_ids = {w.node_id for w in cluster[1]}
    assert nodes == worker_ids, "trials ran on both workers and never on the CPU-less head"
    overlaps = [max_overlap([(s, e) for n, s, e in spans if n == node]) for node in nodes]
    assert overlaps == [4, 4], "four trials at once on each node's GPU, never more"
    # On a Ray this process joined, Tune gives its actors every variable it would: other nodes inherit nothing.
    from ray.tune.execution import class_cache

    from regsweep._ray_start import tune_actors_in_prestarted_workers

    with tune_actors_in_prestarted_workers():
        assert class_cache.DEFAULT_ENV_VARS == {"PL_DISABLE_FORK": "1"}
        assert "AWS_ACCESS_KEY_ID" in class_cache.ENV_VARS_TO_PROPAGATE


def test_worker_node_failure_resumes_trials_from_checkpoints(cluster, tmp_path, write_spec, monkeypatch):
    local, workers = cluster
    spec = write_spec({
        "name": "failover", "trainable": "cnn", "dataset": "digits",
        "fixed": {"epochs": 6, "filters": 16, "batch_size": 16},
        "search_space": {"dropout": {"grid": [0.0, 0.1, 0.2, 0.3]}},
        "resources": {"cpu": 1, "gpu": 0.5, "max_failures": 3, "checkpoint_every_s": 0},
    })
    journal = tmp_path / "results" / "failover" / "journal.jsonl"
    killed = []

    def kill_a_worker():
        victim = workers[0]
        # Only once the victim has trials mid-way (two epochs reported there): a node killed before its trials
        # reported anything has nothing to move (they restart elsewhere from scratch, as they should).
        deadline = time.time() + 120
        while True:
            records = [r for r in read_journal(journal) if r.get("kind") == "epoch"]
            if len(records) >= 6 and sum(r.get("node_id") == victim.node_id for r in records) >= 2:
                break
            if time.time() > deadline:
                return  # `assert killed` below says so
            time.sleep(0.05)
        local.remove_node(victim, allow_graceful=False)
        killed.append(victim.node_id)

    chaos = threading.Thread(target=kill_a_worker)
    chaos.start()
    frame = start_sweep(load_sweep(spec), str(tmp_path / "results"))
    chaos.join()
    assert killed
    assert frame["trial_id"].nunique() == 4 and set(frame["status"]) == {"completed"}
    epochs = frame.groupby("trial_id")["epoch"].apply(sorted)
    assert all(e == list(range(1, 7)) for e in epochs)
    moved = [t for t, rows in frame.groupby("trial_id") if rows["node_id"].nunique() > 1]
    assert moved, "a trial of the killed node must have moved"
    for trial in moved:
        rows = frame[frame["trial_id"] == trial].sort_values("epoch")
        after = rows[rows["node_id"] != killed[0]]
        assert after["epoch"].min() > 1, "it continued from its checkpoint, not from scratch"
    from mlflow.tracking import MlflowClient
    import os

    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("failover")
    children = [r for r in client.search_runs([experiment.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 4
    for child in children:
        assert sorted(m.step for m in client.get_metric_history(child.info.run_id, "val_acc")) == list(range(1, 7))
