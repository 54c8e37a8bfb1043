"""`regsweep report`: the experiment journal from a real smoke factorial sweep."""

import os

import pytest
import yaml

from regsweep._claims import judge
from regsweep._report import SECTIONS, write_report
from regsweep._sweep import start_sweep
from regsweep._validate import load_sweep

pytestmark = pytest.mark.ray

CLAIMS = [
    {"better": {"norm": "batch", "than": "none"}},   # built to be true
    {"better": {"norm": "none", "than": "batch"}},   # built to be false
    {"best": {"norm": ["batch"]}},                   # true
    {"best": {"dropout": [0.3, 0.5]}},               # false: no such level ran; the best lies outside
    {"better": {"dropout": 0.0, "than": 0.05}},      # too close to call with 2 seeds
]


@pytest.fixture(scope="module")
def report(tmp_path_factory, ray_local):
    folder = tmp_path_factory.mktemp("report")
    spec = folder / "factorial.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "factorial", "hypothesis": "Batch norm beats no norm; dropout barely matters.",
        "trainable": "cnn", "dataset": "digits", "fixed": {"epochs": 3, "filters": 16},
        "search_space": {"dropout": {"grid": [0.0, 0.05]}, "norm": {"grid": ["batch", "none"]}},
        "search": {"algorithm": "grid"}, "seeds": 2, "claims": CLAIMS,
    }))
    # Module fixtures start before the per-test MLflow isolation, so this one sets its own store.
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        start_sweep(load_sweep(spec), str(folder / "results"))
        journal = write_report("factorial", str(folder / "results"), str(folder / "reports"))
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI")
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous
    return journal, journal.read_text(), uri


def test_journal_has_every_section(report):
    _, text, _ = report
    for section in SECTIONS:
        assert f"## {section}" in text
    assert "Batch norm beats no norm; dropout barely matters." in text
    assert "trainable: `cnn`; dataset: `digits`" in text and "seeds per configuration: 2" in text
    assert "| # | dropout | norm |" in text
    assert "dropout x norm" in text or "norm x dropout" in text
    assert "| parameter | importance (fANOVA) |" in text


def test_plots_are_valid_pngs_with_content(report):
    journal, text, _ = report
    pngs = sorted(journal.parent.glob("*.png"))
    names = {p.name for p in pngs}
    assert {"factor_dropout.png", "factor_norm.png", "importance.png", "learning_curves.png"} <= names
    assert any(n.startswith("interaction_") for n in names)
    from PIL import Image

    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(png) as image:
            pixels = image.convert("L").getextrema()
            assert image.size[0] > 300 and pixels[0] < pixels[1]  # not a blank canvas
        assert f"({png.name})" in text


def test_claims_are_judged_from_intervals(report):
    _, text, _ = report
    verdicts = [line for line in text.splitlines() if line.startswith("- **") and ("better" in line or "best" in line)]
    verdict_of = {claim: line.split("**")[1] for claim, line in zip(range(len(CLAIMS)), verdicts[-len(CLAIMS):])}
    assert verdict_of[0] == "confirmed"
    assert verdict_of[1] == "refuted"
    assert verdict_of[2] == "confirmed"
    assert verdict_of[3] == "refuted"
    assert verdict_of[4] == "inconclusive" and "intervals overlap" in verdicts[-1]


def test_report_is_attached_to_the_parent_mlflow_run(report):
    import json

    from mlflow.tracking import MlflowClient

    journal, _, tracking_uri = report
    state = json.loads((journal.parent.parent.parent / "results" / "factorial" / "sweep.json").read_text())
    client = MlflowClient(tracking_uri)
    attached = {a.path for a in client.list_artifacts(state["mlflow_parent_run_id"], "report")}
    assert "report/journal.md" in attached and "report/importance.png" in attached


def test_single_replicates_are_never_decisive():
    import pandas as pd

    finals = pd.DataFrame({"config/norm": ["batch", "none"], "val_acc": [0.99, 0.10]})
    verdict = judge({"better": {"norm": "batch", "than": "none"}}, finals, "val_acc", "max")
    assert verdict.outcome == "inconclusive"


def test_a_user_trainables_report_derives_its_gap_and_shows_no_nan(tmp_path, write_spec):
    """A module:function trainable has no dataset of regsweep's and may report no `gap`, `best_epoch` or `params`:
    the gap comes from its losses (and flags overfitting), and what it lacks shows as '-'. Its parameter is
    called `gap` as well, which must not take the statistic's place."""
    spec = write_spec({
        "name": "losses", "trainable": "helpers.user_trainables:overfits", "fixed": {"epochs": 2},
        "search_space": {"gap": {"grid": [0.05, 0.3]}}, "search": {"algorithm": "grid"},
        "metric": "val_loss", "mode": "min", "resources": {"executor": "local"},
    })
    start_sweep(load_sweep(spec), str(tmp_path / "results"), mlflow=False)
    text = write_report("losses", str(tmp_path / "results"), str(tmp_path / "reports")).read_text()
    assert "- trainable: `helpers.user_trainables:overfits`\n" in text
    assert "nan" not in text
    # The searched parameter is called `gap` too: each column keeps its own value.
    assert "| # | gap | val_loss (95% CI) | n |  | best ep | params | gap | epochs | ended |" in text
    assert "| 1 | 0.05 | 0.5500 | 1 | best | - | - | 0.050 | 2.0 | completed 1 |" in text
    assert "| 2 | 0.3 | 0.8000 | 1 | tied | - | - | 0.300 overfit | 2.0 | completed 1 |" in text
    assert "| 1 | gap=0.05 | 0.5000 | 0.5500 | 0.0500 | - |  |" in text
    assert "| 2 | gap=0.3 | 0.5000 | 0.8000 | 0.3000 | - | overfit |" in text
