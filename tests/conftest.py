import os

import pytest

# Tests run on two cores; keep torch from oversubscribing them.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _isolated_data_cache(tmp_path, monkeypatch):
    """Downloads go to a per-test cache, never the user's."""
    monkeypatch.setenv("REGSWEEP_DATA", str(tmp_path / "data-cache"))
