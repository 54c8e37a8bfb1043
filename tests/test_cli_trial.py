"""`regsweep trial`: one trial in-process, JSON lines out, clear errors with exit code 2."""

import json
import subprocess
import sys


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "regsweep", *args], capture_output=True, text=True, timeout=300)


def test_trial_json_lines_reach_95_percent_on_digits():
    done = run_cli("trial", "cnn", "--set", "dataset=digits", "--set", "epochs=10", "--json")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 11))
    assert rows[-1]["done"] is True and rows[-1]["params"] > 0
    assert rows[-1]["best_val_acc"] >= 0.95


def test_trial_bad_config_exits_2_without_traceback():
    done = run_cli("trial", "cnn", "--set", "norm=bach", "--set", "layers=12")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "norm: given 'bach'; allowed: none, batch, instance, layer, group (did you mean 'batch'?)" in done.stderr
    assert "layers: given 12" in done.stderr


def test_trial_offline_dataset_exits_2_with_message(tmp_path):
    done = run_cli("trial", "mlp", "--set", "dataset=fashion_mnist", "--set", f"data_dir={tmp_path}")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "train-images-idx3-ubyte.gz: not found" in done.stderr
