"""A real `mlflow server` on a free loopback port, started and stopped by the tests."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str, process: subprocess.Popen, timeout: float) -> bool:
    """Whether `url` answers within `timeout` seconds; raises if the server's process exits first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return True
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args[0]} exited at start")
            time.sleep(0.2)
    return False


def stop_group(process: subprocess.Popen | None) -> None:
    """Kill a server started with start_new_session=True, with every process it started, and reap it."""
    if process is not None and process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class MlflowServer:
    def __init__(self, folder, port=None):
        self.folder, self.port = folder, port or free_port()
        self.process = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> "MlflowServer":
        command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
                   "--backend-store-uri", f"sqlite:///{self.folder / 'server.db'}",
                   "--artifacts-destination", str(self.folder / "artifacts"), "--workers", "1"]
        # MLflow 3's server also starts a job runner and seven huey consumers (for GenAI jobs), each importing
        # MLflow: on two cores they slowed every start by about a third and competed with the sweep under test.
        environment = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True, env=environment)
        if not answers(f"{self.uri}/health", self.process, timeout):
            self.stop()
            raise RuntimeError("mlflow server did not start in time")
        return self

    def stop(self) -> None:
        stop_group(self.process)
        self.process = None
