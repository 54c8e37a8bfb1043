"""An S3-compatible server (moto's, as `moto_server`) on a free loopback port, started and stopped by the tests:
object storage for a sweep's `resources.storage`, as a cluster's sweeps use s3://. pyarrow, Ray Tune and the
workers reach it through AWS_ENDPOINT_URL."""

import os
import subprocess
import sys

from mlflow_server import answers, free_port, stop_group

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "regsweep-tests", "AWS_SECRET_ACCESS_KEY": "regsweep-tests",
               "AWS_DEFAULT_REGION": "us-east-1"}


class S3Server:
    def __init__(self, port=None):
        self.port = port or free_port()
        self.process = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        """What a process needs to reach this server as S3 (the processes a test starts inherit it)."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    def start(self, timeout: float = 60.0) -> "S3Server":
        moto = os.path.join(os.path.dirname(sys.executable), "moto_server")
        self.process = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(self.port)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        if not answers(f"{self.endpoint}/moto-api/", self.process, timeout):
            self.stop()
            raise RuntimeError("moto_server did not start in time")
        return self

    def create_bucket(self, name: str) -> str:
        """A new bucket; returns its s3:// URI."""
        import pyarrow.fs as pafs

        pafs.S3FileSystem(access_key=CREDENTIALS["AWS_ACCESS_KEY_ID"], secret_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                          region=CREDENTIALS["AWS_DEFAULT_REGION"], endpoint_override=self.endpoint,
                          allow_bucket_creation=True).create_dir(name)
        return f"s3://{name}"

    def stop(self) -> None:
        stop_group(self.process)
        self.process = None
