"""The ConvLSTM forecaster (seed 000): shapes, the journal's parameter count, masking, persistence skill."""

import numpy as np
import pytest
import torch

import trainables
from trainables import ConvLSTMConfig, DatasetError
from trainables.data._fields import load_field, synthetic_field, windows
from trainables.loop import ForecastTrial
from trainables.models._convlstm import ConvLSTMForecaster

FAST = {"epochs": 2, "filters": 4, "synthetic_shape": [40, 12, 16], "batch_size": 8}


def test_shapes_and_return_sequences():
    model = ConvLSTMForecaster(2, layers=3, filters=6, kernel_size=3, dropout=0.1, norm="batch")
    out = model(torch.randn(4, 5, 2, 10, 14))
    assert out.shape == (4, 10, 14)


def test_parameter_count_matches_the_journal():
    # Seed 000: 2 ConvLSTM2D(32, 3x3) + BatchNorm + Conv2D(1) on a 2-channel 93x163 input: 113,697
    # Keras params, which include BatchNorm's moving mean and variance (non-trainable).
    model = ConvLSTMForecaster(2, layers=2, filters=32, kernel_size=3, dropout=0.2, norm="batch")
    trainable = sum(p.numel() for p in model.parameters())
    moving = sum(b.numel() for name, b in model.named_buffers() if "running" in name)
    assert (trainable, trainable + moving) == (113_569, 113_697)
    assert model(torch.randn(1, 5, 2, 93, 163)).shape == (1, 93, 163)


def test_synthetic_field_is_seeded_and_has_gaps():
    a, b, c = synthetic_field(30, 12, 16, 0), synthetic_field(30, 12, 16, 0), synthetic_field(30, 12, 16, 1)
    assert np.array_equal(a, b, equal_nan=True) and not np.array_equal(a, c, equal_nan=True)
    assert np.isnan(a[:, :3, :3]).all() and 0 < np.isnan(a).mean() < 0.2
    inputs, targets = windows(a, seq_len=5, horizon=2)
    assert inputs.shape == (30 - 5 - 2 + 1, 5, 12, 16) and np.array_equal(targets[0], a[6], equal_nan=True)


def test_masked_cells_do_not_count():
    trial = ForecastTrial(ConvLSTMConfig(**FAST))
    mask = trial.extras["val_mask"]
    assert (mask == 0).any()
    before = trial.evaluate(trial.val_x, trial.val_y, "val")
    scrambled = trial.val_y.clone()
    scrambled[mask == 0] = 1e6  # values under the mask are never looked at
    after = trial.evaluate(trial.val_x, scrambled, "val")
    assert after["loss"] == pytest.approx(before["loss"]) and np.isfinite(after["loss"])
    index = torch.arange(4)
    out = trial.model(trial.train_x[:4])
    y = trial.train_y[:4].clone()
    loss = trial.batch_loss(out, y, index)
    y[trial.extras["train_mask"][:4] == 0] = -1e6
    assert trial.batch_loss(out, y, index).item() == pytest.approx(loss.item())


def test_skill_against_persistence():
    rows = list(trainables.convlstm({**FAST, "epochs": 3}))
    last = rows[-1]
    assert {"val_loss", "val_mae", "val_skill", "val_persistence_loss"} <= set(last)
    assert last["val_persistence_loss"] > 0 and np.isfinite(last["val_skill"]) and last["val_skill"] < 1.0
    trial = ForecastTrial(ConvLSTMConfig(**FAST))
    # A model that predicts exactly the last input frame has skill 0 against persistence.
    class Persistence(torch.nn.Module):
        def forward(self, x):
            return x[:, -1, 0]

    trial.model = Persistence()
    assert trial.evaluate(trial.val_x, trial.val_y, "val")["skill"] == pytest.approx(0.0, abs=1e-6)


def test_field_files_and_their_errors(tmp_path):
    field = synthetic_field(20, 6, 7, 3)
    np.save(tmp_path / "f.npy", field)
    np.savez(tmp_path / "f.npz", chl=field)
    assert load_field(f"npy:{tmp_path / 'f.npy'}", 0, 0, 0, 0).shape == (20, 6, 7)
    assert load_field(f"npz:{tmp_path / 'f.npz'}:chl", 0, 0, 0, 0).shape == (20, 6, 7)
    np.save(tmp_path / "flat.npy", np.zeros((4, 5)))
    with pytest.raises(DatasetError, match=r"flat.npy: expected a \(time, height, width\) array"):
        load_field(f"npy:{tmp_path / 'flat.npy'}", 0, 0, 0, 0)
    with pytest.raises(DatasetError, match="nope.npy: file not found"):
        load_field(f"npy:{tmp_path / 'nope.npy'}", 0, 0, 0, 0)
    with pytest.raises(DatasetError, match="too few"):
        windows(field[:3], seq_len=5, horizon=1)


@pytest.mark.ray
def test_smoke_sweep_through_the_engine(ray_local, tmp_path, write_spec):
    from regsweep._leaderboard import build_leaderboard
    from regsweep._sweep import start_sweep
    from regsweep._validate import load_sweep

    spec = write_spec({
        "name": "forecast", "trainable": "convlstm", "dataset": "synthetic", "fixed": FAST,
        "search_space": {"dropout": {"grid": [0.0, 0.2]}}, "seeds": 2, "metric": "val_loss", "mode": "min",
    })
    frame = start_sweep(load_sweep(spec), str(tmp_path / "results"))
    assert frame["trial_id"].nunique() == 4 and set(frame["status"]) == {"completed"}
    assert {"val_skill", "val_mae"} <= set(frame.columns)
    board = build_leaderboard(frame, "val_loss", "min")
    assert len(board.top) == 2
