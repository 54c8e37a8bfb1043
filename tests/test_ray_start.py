"""The local Ray a sweep starts (regsweep/_ray_start.py): the cores it offers, the head processes it leaves out, the
workers its trial actors take, and a Ray that `ray start` left running, joined as it is."""

import os
import shutil
import subprocess
import sys
import time

import pytest
from helpers.cores import needs_two_cores, run_on_one_core

from regsweep._results import read_results

pytestmark = pytest.mark.ray


# Starts or joins Ray through regsweep and prints its CPUs (run by a driver pinned to one core).
RAY_CPUS = """
from regsweep._ray_start import ensure_ray
import ray
ensure_ray()
print(ray.cluster_resources().get("CPU"))
ray.shutdown()
"""


@needs_two_cores
def test_the_local_ray_offers_only_the_cores_the_process_may_use():
    """Ray counts the machine's CPUs, not the process's affinity: pinned to one core, the local Ray regsweep
    starts must offer one CPU, or it would run a trial per machine core on that one."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    assert float(run_on_one_core(RAY_CPUS, env)) == 1.0


# Starts Ray through regsweep, runs a trial of Ray Tune on it and prints the programs of the processes this driver
# started for Ray.
RAY_HEAD_PROCESSES = """
import os, sys
from helpers.processes import children
from regsweep._ray_start import ensure_ray
import ray
from ray import tune
ensure_ray()
mine = [os.path.basename(next((arg for arg in command if arg.endswith(".py")), command[0]))
        for command in children({os.getpid()}).values()]
tuner = tune.Tuner(lambda config: tune.report({"answer": config["x"] + 1}), param_space={"x": 41},
                   run_config=tune.RunConfig(storage_path=sys.argv[1], verbose=0))
assert tuner.fit()[0].metrics["answer"] == 42
ray.shutdown()
print(" ".join(sorted(mine)))
"""


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the driver's child processes from /proc")
@pytest.mark.parametrize("usage_stats", ["1", "0"])
def test_the_local_ray_starts_no_autoscaler_monitor_and_no_log_monitor(usage_stats, tmp_path):
    """A one-machine Ray has nothing to autoscale, and regsweep's driver takes no worker output: a sweep's own
    Ray starts neither process (about 2.5 s of CPU at every start, and their stops at its end). Its API server
    (dashboard.py) runs only Ray's usage-stats reporter: kept while the stats are on, not started when they are off."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"RAY_USAGE_STATS_ENABLED": usage_stats}
    done = subprocess.run([sys.executable, "-c", RAY_HEAD_PROCESSES, str(tmp_path)], capture_output=True, text=True,
                          timeout=180, env=env)
    assert done.returncode == 0, done.stdout + done.stderr  # Tune ran its trial on that Ray
    programs = done.stdout.split()
    assert "gcs_server" in programs and "raylet" in programs, programs  # the listing sees Ray's head processes
    assert "monitor.py" not in programs and "log_monitor.py" not in programs, programs
    assert ("dashboard.py" in programs) == (usage_stats == "1"), programs


# Starts a sweep's own Ray, notes the worker processes its raylet prestarted, then runs the sweep on that Ray.
PRESTARTED_THEN_SWEEP = """
import os, sys, time
from helpers.processes import children
from regsweep._ray_start import ensure_ray
from regsweep.cli import main

ensure_ray()
raylets = {pid for pid, command in children({os.getpid()}).items() if command[0].endswith("raylet")}
for _ in range(300):  # Ray prestarts one worker per CPU once the driver has connected
    prestarted = {pid for pid, command in children(raylets).items() if command[0].startswith("ray::IDLE")}
    if len(prestarted) >= 2:
        break
    time.sleep(0.1)
print("prestarted:", " ".join(map(str, sorted(prestarted))))
sys.exit(main(["run", sys.argv[1], "--no-mlflow", "--results", sys.argv[2]]))
"""


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the Ray's worker processes from /proc")
def test_trials_on_a_sweeps_own_ray_run_in_the_workers_ray_prestarted(tmp_path, write_spec):
    """Tune gives its trial actors a runtime env (PL_DISABLE_FORK), and Ray places no such actor in a worker it
    prestarted without one: it started new processes (importing Ray again) and ended the prestarted ones. On a
    sweep's own Ray the workers inherit the variable instead, and the actors take the prestarted workers."""
    spec = write_spec({"name": "reuse", "trainable": "helpers.user_trainables:reports_its_process",
                       "search_space": {"x": {"grid": [1, 2, 3, 4]}}})
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PL_DISABLE_FORK")}
    done = subprocess.run([sys.executable, "-c", PRESTARTED_THEN_SWEEP, str(spec), str(tmp_path / "results")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    prestarted = {int(pid) for pid in done.stdout.split("prestarted:")[1].splitlines()[0].split()}
    frame = read_results(str(tmp_path / "results" / "reuse"))
    assert len(frame) == 4 and len(prestarted) >= 2, done.stdout
    assert set(frame["process"]) <= prestarted, (set(frame["process"]), prestarted, done.stdout, done.stderr)
    assert set(frame["pl_disable_fork"]) == {"1"}


def test_on_its_own_ray_tune_passes_its_actors_only_variables_set_after_ray_started(ray_local, monkeypatch):
    """The workers of a Ray this process started inherited its environment: Tune is left to pass only what
    changed since (here an AWS key), and its own names are put back after."""
    from ray.tune.execution import class_cache

    from regsweep._ray_start import tune_actors_in_prestarted_workers

    defaults, propagated = class_cache.DEFAULT_ENV_VARS, class_cache.ENV_VARS_TO_PROPAGATE
    assert os.environ["PL_DISABLE_FORK"] == "1"  # set before this Ray started, so its workers have it
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "set-after-ray-started")
    with tune_actors_in_prestarted_workers():
        assert class_cache.DEFAULT_ENV_VARS == {}
        assert class_cache.ENV_VARS_TO_PROPAGATE == {"AWS_ACCESS_KEY_ID"}
    assert class_cache.DEFAULT_ENV_VARS is defaults and class_cache.ENV_VARS_TO_PROPAGATE is propagated


@needs_two_cores
def test_without_ray_address_a_ray_that_ray_start_left_running_is_joined_as_it_is():
    """On cluster.yaml's head `regsweep run` finds the Ray of `ray start` without RAY_ADDRESS, as ray.init does;
    Ray refuses a CPU count when joining, so none is given, and the cluster keeps the CPUs it was started with."""
    import tempfile

    from mlflow_server import free_port, stop_group

    temp = tempfile.mkdtemp(prefix="rs-", dir="/tmp")  # short: Ray's socket paths live under it
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "RAY_TMPDIR": temp}
    ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
    # In the foreground (--block) and in its own session, so that killing its group stops this Ray and no
    # other (`ray stop` would stop every Ray on the machine, the test session's too).
    head = subprocess.Popen([ray_cli, "start", "--head", "--block", "--num-cpus=3", "--include-dashboard=false",
                             "--disable-usage-stats", f"--port={free_port()}"], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        address_file = os.path.join(temp, "ray", "ray_current_cluster")
        for _ in range(600):
            if os.path.exists(address_file) or head.poll() is not None:
                break
            time.sleep(0.1)
        assert os.path.exists(address_file), f"ray start did not come up (exit code {head.poll()})"
        assert float(run_on_one_core(RAY_CPUS, env)) == 3.0
    finally:
        stop_group(head)
        shutil.rmtree(temp, ignore_errors=True)
