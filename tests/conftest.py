import atexit
import os
import shutil
import signal
import sys
import tempfile

import pytest

# Tests run on two cores; keep torch from oversubscribing them.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# A test run started in the background by a script (`pytest &`) inherits SIGINT ignored, and so would every
# process the tests start: the Ctrl-C tests need it delivered, as a terminal delivers it. A signal the tests'
# own process handles is reset to its default in the programs it starts.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
# Whatever a test or fixture forgets, MLflow never writes into the checkout.
_SESSION_MLRUNS = tempfile.mkdtemp(prefix="regsweep-tests-mlruns-")
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_SESSION_MLRUNS}/mlflow.db"


# The bundled datasets' prepared arrays (derived from packaged data only) are shared by the session's tests.
_SESSION_PREPARED = tempfile.mkdtemp(prefix="regsweep-tests-prepared-")
# Removed when the session ends (the prepared arrays are 16 MB): nothing of the tests stays in /tmp.
for _folder in (_SESSION_MLRUNS, _SESSION_PREPARED):
    atexit.register(shutil.rmtree, _folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def _isolated_data_cache(tmp_path, monkeypatch):
    """Downloads go to a per-test cache, never the user's."""
    (tmp_path / "data-cache").mkdir()
    (tmp_path / "data-cache" / "prepared").symlink_to(_SESSION_PREPARED, target_is_directory=True)
    monkeypatch.setenv("REGSWEEP_DATA", str(tmp_path / "data-cache"))
    # Sweeps log to MLflow by default; each test gets its own store, never ./mlruns.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    (tmp_path / "mlruns").mkdir(exist_ok=True)


TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
# Workers import user trainables from tests/helpers, as a user's own package would be importable.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [TESTS_DIR, os.environ.get("PYTHONPATH")]))


def start_local_ray():
    """A real local Ray with 2 CPUs, as on CI's machine (no-op when one is running), started as regsweep starts
    a sweep's own Ray (without the head processes a sweep does not use; trial actors in its prestarted workers)."""
    import ray

    from regsweep._ray_start import start_local_ray as start

    if not ray.is_initialized():
        start(num_cpus=2)
    return ray


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray for the engine tests; the multi-node tests put it back after their cluster."""
    ray = start_local_ray()
    yield ray
    ray.shutdown()


@pytest.fixture
def write_spec(tmp_path):
    """Write a sweep file (a dict) as YAML into tmp_path and return its path."""
    import yaml

    def write(spec, name="sweep.yaml"):
        path = tmp_path / name
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return path

    return write


@pytest.fixture
def s3_bucket(monkeypatch):
    """A bucket on a real S3-compatible server (moto's) on a loopback port, as s3://...; this process and those
    it starts (Ray's workers among them) reach it through the environment. The server stops after the test."""
    from s3_server import S3Server

    server = S3Server().start()
    try:
        for key, value in server.environment().items():
            monkeypatch.setenv(key, value)
        yield server.create_bucket("regsweep-tests")
    finally:
        server.stop()


# Fixtures that start Ray in the test process: a test using one is a Ray test whether or not it is marked.
RAY_FIXTURES = {"ray_local", "_cluster"}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups
def pytest_collection_modifyitems(config, items):
    """Ray tests (marked `ray`, or using a Ray fixture) all go to one pytest-xdist worker and run there in file
    order: `make test` runs two workers, and a Ray started with `ray start` by one test is joined by any ray.init()
    on this machine, so two Ray tests must never overlap. The other tests run on the other worker meanwhile."""
    for item in items:
        if RAY_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.ray)
        if item.get_closest_marker("ray") is not None:
            item.add_marker(pytest.mark.xdist_group("ray"))


def _ray_is_running() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


@pytest.fixture(autouse=True)
def _ray_tests_are_marked(request):
    """A test that starts Ray in this process must say so (mark it `ray`), or `make test` would run it beside
    the Ray tests. Ray started in a process a test runs is for the test's author to mark."""
    running_before = _ray_is_running()
    yield
    if not running_before and _ray_is_running() and request.node.get_closest_marker("ray") is None:
        pytest.fail(f"{request.node.nodeid} started Ray but is not marked `ray`: add @pytest.mark.ray")
