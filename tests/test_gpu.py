"""The training loop on a CUDA device: placement, checkpoints across devices (bf16: tests/test_loop.py).

Skipped where torch sees no GPU (CI, the project's own machines); run on a GPU host with
`python -m pytest tests/test_gpu.py`. Nothing here needs Ray (the sweeps use the local executor).
"""

import math

import pytest
import torch

from trainables import CNNConfig, MLPConfig, Trial

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

FAST = {"dataset": "digits", "epochs": 3, "batch_size": 128}


def test_auto_device_trains_on_the_gpu():
    trial = Trial(CNNConfig(**FAST))  # device: auto
    rows = list(trial.epochs())
    assert trial.device.type == "cuda"
    assert all(p.is_cuda for p in trial.model.parameters())
    assert trial.train_x.is_cuda and trial.val_y.is_cuda
    assert trial.train_x.is_contiguous()  # channels-last is for the CPU only
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert trial.summary()["device"] == "cuda"


def test_cnn_reaches_95_percent_on_digits_on_the_gpu():
    trial = Trial(CNNConfig(dataset="digits", epochs=10, device="cuda"))
    rows = list(trial.epochs())
    assert max(r["val_acc"] for r in rows) >= 0.95


def val_losses(rows):
    return [row["val_loss"] for row in rows]


def test_deterministic_gpu_runs_are_bit_identical():
    config = {**FAST, "seed": 7, "dropout": 0.3, "device": "cuda", "deterministic": True}
    first = val_losses(Trial(CNNConfig(**config)).epochs())
    second = val_losses(Trial(CNNConfig(**config)).epochs())
    other = val_losses(Trial(CNNConfig(**{**config, "seed": 8})).epochs())
    assert first == second and first != other


@pytest.mark.parametrize("cls, extra", [(MLPConfig, {}), (CNNConfig, {"dropout": 0.3})])
def test_checkpoint_resume_on_the_gpu_matches_uninterrupted(tmp_path, cls, extra):
    # Exact only if the GPU's random stream (dropout masks) and the batch order are restored.
    config = {**FAST, "epochs": 4, "seed": 3, "device": "cuda", "deterministic": True, **extra}
    straight = val_losses(Trial(cls(**config)).epochs())
    first = Trial(cls(**config))
    part = [first.run_epoch()["val_loss"], first.run_epoch()["val_loss"]]
    first.save(str(tmp_path / "ckpt.pt"))
    resumed = Trial(cls(**config))
    resumed.load(str(tmp_path / "ckpt.pt"))
    assert part + val_losses(resumed.epochs()) == straight


def test_nan_on_the_gpu_ends_the_trial_as_diverged():
    trial = Trial(MLPConfig(**{**FAST, "epochs": 5}, device="cuda", lr=10.0, optimizer="sgd", momentum=0.0, l2=1.0))
    rows = list(trial.epochs())
    assert trial.status == "diverged" and rows[-1]["diverged_epoch"] == rows[-1]["epoch"]


def test_gpu_checkpoint_continues_on_the_cpu(tmp_path):
    config = {**FAST, "epochs": 3, "seed": 1}
    gpu = Trial(MLPConfig(**config, device="cuda"))
    gpu.run_epoch()
    gpu.save(str(tmp_path / "ckpt.pt"))
    cpu = Trial(MLPConfig(**config, device="cpu"))
    cpu.load(str(tmp_path / "ckpt.pt"))
    assert cpu.epoch == 1 and all(not p.is_cuda for p in cpu.model.parameters())
    rows = list(cpu.epochs())
    assert [r["epoch"] for r in rows] == [2, 3] and math.isfinite(rows[-1]["val_loss"])


@pytest.mark.parametrize("gpu, device", [(0.5, "cuda"), (0, "cpu")])
def test_the_local_executor_gives_trials_the_gpus_they_ask_for(tmp_path, write_spec, gpu, device):
    """Workers are forked from a server that imported torch: CUDA must still work in them, and a slot
    without a GPU must see none (device: auto then trains on the CPU)."""
    from regsweep._sweep import start_sweep
    from regsweep._validate import load_sweep

    spec = write_spec({
        "name": "localgpu", "trainable": "mlp", "dataset": "digits", "fixed": {"epochs": 2, "hidden": [32]},
        "search_space": {"dropout": {"grid": [0.0, 0.1, 0.2, 0.3]}}, "search": {"algorithm": "grid"},
        "resources": {"executor": "local", "gpu": gpu},
    })
    frame = start_sweep(load_sweep(spec), str(tmp_path / "results"), mlflow=False)
    ends = frame.sort_values("epoch").groupby("trial_id").tail(1)
    assert len(ends) == 4 and set(ends["status"]) == {"completed"}
    assert set(ends["device"]) == {device}
