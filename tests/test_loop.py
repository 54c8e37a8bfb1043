"""The training loop: determinism, penalties, divergence, early stopping, checkpoints, schedules."""

import math
import warnings

import pytest
import torch

import trainables
from trainables import CNNConfig, MLPConfig, Trial
from trainables.loop._device import cpu_runs_bf16
from trainables.loop._eval_rows import eval_rows
from trainables.models import build_cnn

# The CPU loop, bit for bit; tests/test_gpu.py covers a GPU (where float sums need `deterministic`).
FAST = {"dataset": "digits", "epochs": 3, "batch_size": 128, "device": "cpu"}
TIMING_KEYS = {"epoch_seconds", "samples_per_second"}


def without_timing(rows):
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in rows]


def run(config, cls=CNNConfig):
    trial = Trial(cls(**config))
    return list(trial.epochs()), trial


def test_epoch_dict_has_every_metric():
    rows, trial = run({**FAST, "epochs": 2})
    expected = {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "gap", "lr",
                "epoch_seconds", "samples_per_second"}
    assert expected <= set(rows[0])
    assert rows[0]["gap"] == pytest.approx(rows[0]["val_loss"] - rows[0]["train_loss"])
    summary = trial.summary()
    assert summary["params"] == trial.params > 0 and summary["status"] == "completed"
    assert summary["best_epoch"] in (1, 2) and "test_acc" not in summary


def test_same_config_and_seed_is_bit_identical():
    first, _ = run({**FAST, "seed": 7, "dropout": 0.3})
    second, _ = run({**FAST, "seed": 7, "dropout": 0.3})
    other, _ = run({**FAST, "seed": 8, "dropout": 0.3})
    assert without_timing(first) == without_timing(second)
    assert without_timing(first) != without_timing(other)


@pytest.mark.parametrize("penalty", ["l1", "l2"])
def test_l1_l2_change_the_objective(penalty):
    plain, _ = run({**FAST, "epochs": 2}, MLPConfig)
    penalised, trial = run({**FAST, "epochs": 2, penalty: 1e-3}, MLPConfig)
    assert plain[0]["train_penalty"] == 0.0
    assert penalised[0]["train_penalty"] > 0.0
    assert trial.penalty().item() > 0.0
    assert penalised[1]["val_loss"] != plain[1]["val_loss"]


def test_l2_shrinks_weights():
    _, plain = run({**FAST, "epochs": 3}, MLPConfig)
    _, shrunk = run({**FAST, "epochs": 3, "l2": 1e-2}, MLPConfig)
    norm = lambda t: sum(p.pow(2).sum().item() for p in t._penalised)  # noqa: E731
    assert norm(shrunk) < 0.8 * norm(plain)


def test_nan_loss_ends_trial_as_diverged():
    # Weight decay with a step this large multiplies the weights by -19 per step: inf, then NaN.
    rows, trial = run({**FAST, "lr": 10.0, "optimizer": "sgd", "momentum": 0.0, "l2": 1.0, "epochs": 5}, MLPConfig)
    assert trial.status == "diverged"
    assert rows[-1]["status"] == "diverged" and rows[-1]["diverged_epoch"] == rows[-1]["epoch"]
    summary = trial.summary()
    assert summary["stopped_by"] == "diverged" and summary["epochs_trained"] == rows[-1]["epoch"]


def test_forced_nan_weights_diverge_not_crash():
    trial = Trial(CNNConfig(**FAST))
    with torch.no_grad():
        next(trial.model.parameters()).fill_(float("nan"))
    row = trial.run_epoch()
    assert row["status"] == "diverged" and row["diverged_epoch"] == 1 and trial.finished


def test_patience_triggers_on_plateau():
    trial = Trial(CNNConfig(**{**FAST, "epochs": 50, "patience": 2}))
    trial.best.update(val_loss=-1.0)  # nothing can beat this, so every epoch is a bad one
    rows = list(trial.epochs())
    assert len(rows) == 2 and trial.status == "stopped_early" and trial.stopped_by == "patience"


@pytest.mark.parametrize("schedule", ["cosine", "exponential", "plateau"])
def test_schedules_change_the_learning_rate(schedule):
    rows, _ = run({**FAST, "epochs": 4, "schedule": schedule, "lr_decay": 0.5, "plateau_patience": 0,
                   "lr": 0.01}, MLPConfig)
    lrs = [r["lr"] for r in rows]
    assert lrs[0] == 0.01
    if schedule != "plateau":
        assert lrs[1] < lrs[0]
    assert all(b <= a for a, b in zip(lrs, lrs[1:]))


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_optimizers_and_clipping_train(optimizer):
    rows, _ = run({**FAST, "optimizer": optimizer, "grad_clip": 1.0, "lr": 0.01 if optimizer != "sgd" else 0.05})
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]


@pytest.mark.parametrize("schedule", ["none", "plateau"])
def test_checkpoint_resume_matches_uninterrupted(tmp_path, schedule):
    config = {**FAST, "epochs": 4, "dropout": 0.3, "schedule": schedule, "seed": 3, "eval_test": True}
    straight, uninterrupted = run(config)
    first = Trial(CNNConfig(**config))
    part = [first.run_epoch(), first.run_epoch()]
    first.save(str(tmp_path / "ckpt.pt"))
    del first
    resumed = Trial(CNNConfig(**config))
    resumed.load(str(tmp_path / "ckpt.pt"))
    rest = list(resumed.epochs())
    assert without_timing(part + rest) == without_timing(straight)
    assert resumed.summary() == uninterrupted.summary()


def test_eval_test_reports_test_metrics_from_best_epoch():
    _, trial = run({**FAST, "eval_test": True})
    summary = trial.summary()
    assert 0.0 < summary["test_acc"] <= 1.0 and math.isfinite(summary["test_loss"])


def rows_for(model, row_shape):
    return eval_rows(model.eval(), torch.zeros(1, *row_shape))


def test_evaluation_chunks_keep_the_widest_activation_within_16_mb():
    wide = torch.nn.Sequential(torch.nn.Linear(8, 2**16), torch.nn.ReLU(), torch.nn.Linear(2**16, 2))
    assert rows_for(wide, (8,)) == 64  # 2**22 values / 2**16 per row, the floor
    assert rows_for(torch.nn.Linear(8, 2**14), (8,)) == 256
    assert rows_for(torch.nn.Linear(8, 10), (8,)) == 2048  # the ceiling
    cnn = build_cnn(CNNConfig(filters=32, layers=2), (1, 28, 28), 10)
    assert rows_for(cnn, (1, 28, 28)) == 2**22 // (32 * 28 * 28) == 167  # the first block's 32 x 28 x 28
    assert rows_for(build_cnn(CNNConfig(filters=32, layers=2), (1, 8, 8), 10), (1, 8, 8)) == 2048
    assert not any(m._forward_hooks for m in cnn.modules())
    assert eval_rows(cnn, torch.zeros(1, 1, 28, 28, device="meta")) == 2048  # off the CPU: no budget
    with pytest.raises(ValueError, match="eval mode"):
        eval_rows(cnn.train(), torch.zeros(1, 1, 28, 28))


def test_a_cnn_on_28x28_images_validates_in_chunks_with_the_metrics_of_one_pass():
    trial = Trial(CNNConfig(dataset="mnist_5k", filters=32, layers=2, device="cpu"))
    chunked = trial.evaluate(trial.val_x, trial.val_y, "val")
    rows = trial._eval_rows
    assert rows == 167 and len(trial.val_y) > 4 * rows
    trial._eval_rows = len(trial.val_y)
    whole = trial.evaluate(trial.val_x, trial.val_y, "val")
    assert chunked["acc"] == whole["acc"] and chunked["loss"] == pytest.approx(whole["loss"], rel=1e-5)


def test_default_cnn_reaches_95_percent_on_digits():
    rows = list(trainables.cnn({"dataset": "digits", "epochs": 10}))
    assert rows[-1]["done"] and rows[-1]["epoch"] == 10
    assert max(r["val_acc"] for r in rows) >= 0.95


def bf16_warnings(config):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Trial(CNNConfig(**config))
    return [w for w in caught if "no bf16 units" in str(w.message)]


def test_bf16_on_a_cpu_without_bf16_units_warns_and_fp32_does_not():
    # This project's EPYC has none (its bf16 epochs ran 8x slower than fp32); a Xeon with AMX has them.
    found = bf16_warnings({**FAST, "bf16": True})
    assert len(found) == (0 if cpu_runs_bf16() else 1)
    assert all(w.category is RuntimeWarning and "bf16: false" in str(w.message) for w in found)
    assert bf16_warnings(FAST) == []


@pytest.mark.filterwarnings("ignore:bf16. true, but this CPU:RuntimeWarning")
@pytest.mark.parametrize("device", ["cpu", pytest.param(
    "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"))])
def test_bf16_autocast_runs_the_model_in_bf16_and_still_learns(device):
    config = {**FAST, "device": device}
    rows, trial = run({**config, "bf16": True})
    with trial._autocast():
        logits = trial.model(trial.train_x[:8])
    assert logits.dtype == torch.bfloat16
    assert all(math.isfinite(r["val_loss"]) for r in rows)
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    fp32, _ = run(config)
    assert rows[-1]["val_loss"] != fp32[-1]["val_loss"]
