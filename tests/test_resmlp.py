"""The residual-MLP regression trainable (seed 002): model, log target, groups, Parquet reader, sweep."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import trainables
from trainables import DatasetError, ResMLPConfig
from trainables.data._tabular import load_table
from trainables.loop import RegressionTrial
from trainables.models._resmlp import ResidualBlock, ResMLP

FAST = {"epochs": 3, "batch_size": 64, "width": 32, "blocks": [32, 16], "dropout": [0.2, 0.1]}


def test_model_shapes_blocks_and_embeddings():
    model = ResMLP(5, 32, [32, 16, 8], [0.3, 0.2, 0.1], log_target=True, embed_index=[4], embed_vocab=[3],
                   embed_dim=2)
    blocks = [m for m in model.modules() if isinstance(m, ResidualBlock)]
    assert [b.body[0].out_features for b in blocks] == [32, 16, 8]
    assert [b.body[3].p for b in blocks] == [0.3, 0.2, 0.1]
    assert isinstance(blocks[0].skip, torch.nn.Identity) and isinstance(blocks[1].skip, torch.nn.Linear)
    assert [type(m) for m in blocks[0].body] == [torch.nn.Linear, torch.nn.LayerNorm, torch.nn.GELU, torch.nn.Dropout]
    x = torch.randn(7, 5)
    x[:, 4] = torch.tensor([0, 1, 2, 0, 1, 2, 0], dtype=torch.float32)
    out = model(x)
    assert out.shape == (7,) and model.project.in_features == 4 + 2


def test_log_target_predictions_stay_at_least_one():
    trial = RegressionTrial(ResMLPConfig(**FAST, log_target=True, lr=0.05))
    for _ in trial.epochs():
        pass
    with torch.no_grad():
        trial.model.eval()
        pred = trial.model(trial.val_x)
    assert (pred >= 0).all() and (2 ** pred >= 1).all()
    target = load_table("diabetes", None, None).y
    assert trial.val_y.max() <= np.log2(target.max()) + 1e-5  # trained on log2 of the target


def test_group_metrics_and_weights():
    rows = list(trainables.resmlp({**FAST, "group_by": ["sex"], "group_weights": "balanced"}))
    last = rows[-1]
    assert {"val_loss_sex1", "val_loss_sex2", "val_mae"} <= set(last)
    assert "val_acc" not in last and "train_acc" not in last and "best_val_acc" not in last
    trial = RegressionTrial(ResMLPConfig(**FAST, group_by=["sex"], group_weights={"sex2": 5.0}))
    weights = trial.extras["train_weight"]
    assert set(weights.unique().tolist()) == {1.0, 5.0}
    with pytest.raises(ValueError, match="group_weights names groups \\['sex9'\\]"):
        RegressionTrial(ResMLPConfig(**FAST, group_by=["sex"], group_weights={"sex9": 2.0}))


def test_weighting_changes_training():
    plain = list(trainables.resmlp({**FAST, "group_by": ["sex"]}))[-1]
    weighted = list(trainables.resmlp({**FAST, "group_by": ["sex"], "group_weights": {"sex1": 10.0}}))[-1]
    assert plain["val_loss"] != weighted["val_loss"]


def write_table(path, **columns):
    pq.write_table(pa.table(columns), path)
    return f"parquet:{path}"


def test_parquet_reader_and_its_errors(tmp_path):
    good = write_table(tmp_path / "good.parquet", a=[1.0, 2.0, 3.0, 4.0], k=[1, 1, 2, 2], m=[3, 4, 3, 4],
                       y=[2.0, 4.0, 8.0, 16.0], name=["x", "y", "z", "w"])
    table = load_table(good, ("a", "k"), "y", ("k", "m"))
    assert table.x.shape == (4, 2) and table.group_labels == ("k1_m3", "k1_m4", "k2_m3", "k2_m4")
    with pytest.raises(DatasetError, match=r"good.parquet: no column 'b'; columns: a, k, m, y, name"):
        load_table(good, ("a", "b"), "y", ())
    with pytest.raises(DatasetError, match=r"column 'name' is not numeric"):
        load_table(good, ("a", "name"), "y", ())
    nan = write_table(tmp_path / "nan.parquet", a=[1.0, 2.0], y=[1.0, float("nan")])
    with pytest.raises(DatasetError, match=r"target 'y' has 1 missing or infinite values \(first at row 1\)"):
        load_table(nan, ("a",), "y", ())
    with pytest.raises(DatasetError, match="needs `features`"):
        load_table(good, None, None, ())
    with pytest.raises(DatasetError, match="missing.parquet: file not found"):
        load_table(f"parquet:{tmp_path / 'missing.parquet'}", ("a",), "y", ())


def test_parquet_dataset_trains(tmp_path):
    rng = np.random.default_rng(0)
    k = rng.integers(1, 4, 400)
    a = rng.normal(size=400)
    path = write_table(tmp_path / "t.parquet", a=a, k=k, y=2.0 ** (1 + k + 0.1 * a))
    rows = list(trainables.resmlp({**FAST, "dataset": path, "features": ["a", "k"], "target": "y",
                                   "group_by": ["k"], "embed_columns": ["k"], "log_target": True, "epochs": 5}))
    assert {"val_loss_k1", "val_loss_k2", "val_loss_k3"} <= set(rows[-1])
    assert rows[-1]["val_loss"] < rows[0]["val_loss"]


@pytest.mark.ray
def test_smoke_sweep_through_the_engine(ray_local, tmp_path, write_spec):
    import os

    from mlflow.tracking import MlflowClient

    from regsweep._leaderboard import build_leaderboard
    from regsweep._sweep import start_sweep
    from regsweep._validate import load_sweep

    spec = write_spec({
        "name": "reg", "trainable": "resmlp", "dataset": "diabetes",
        "fixed": {**FAST, "log_target": True, "group_by": ["sex"], "optimizer": "adamw", "schedule": "exponential"},
        "search_space": {"dropout": {"grid": [[0.0, 0.0], [0.3, 0.1]]}}, "seeds": 2,
        "metric": "val_loss", "mode": "min",
    })
    frame = start_sweep(load_sweep(spec), str(tmp_path / "results"))
    assert frame["trial_id"].nunique() == 4 and {"val_loss_sex1", "val_loss_sex2"} <= set(frame.columns)
    board = build_leaderboard(frame, "val_loss_sex2", "min")
    assert len(board.top) == 2 and set(board.top["n"]) == {2}
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("reg")
    child = [r for r in client.search_runs([experiment.experiment_id]) if "mlflow.parentRunId" in r.data.tags][0]
    assert len(client.get_metric_history(child.info.run_id, "val_loss_sex1")) == 3
