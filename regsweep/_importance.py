"""Parameter importance with Optuna's fANOVA, over the finished trials of a results table."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

MAX_TRIALS = 1000


def _distribution(values: pd.Series) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    clean = values.dropna()
    numeric = pd.api.types.is_numeric_dtype(clean) and not pd.api.types.is_bool_dtype(clean)
    if numeric and clean.nunique() > 1 and (clean.nunique() > 6 or not pd.api.types.is_integer_dtype(clean)):
        return FloatDistribution(float(clean.min()), float(clean.max()))
    return CategoricalDistribution(sorted({str(v) for v in clean}))


def param_importances(finals: pd.DataFrame, metric: str, mode: str) -> dict[str, float]:
    """Normalised fANOVA importances of the searched parameters (needs >= 4 trials, >= 2 parameters
    that vary); {} otherwise. Parameters absent in a trial (conditional ones) are left out."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    columns = [c for c in finals.columns if c.startswith("config/") and finals[c].astype(str).nunique() > 1]
    rows = finals.dropna(subset=[metric])
    if len(rows) < 4 or not columns:
        return {}
    if len(rows) > MAX_TRIALS:
        # fANOVA's random forests grow with the trials; a fixed sample keeps a 10,000-trial report fast.
        rows = rows.sample(MAX_TRIALS, random_state=0)
    distributions = {c[len("config/"):]: _distribution(rows[c]) for c in columns}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    for _, row in rows.iterrows():
        params, dists = {}, {}
        for column in columns:
            name, value = column[len("config/"):], row[column]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            dist = distributions[name]
            params[name] = str(value) if hasattr(dist, "choices") else float(value)
            dists[name] = dist
        study.add_trial(optuna.trial.create_trial(value=float(row[metric]), params=params, distributions=dists))
    try:
        return get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
    except (RuntimeError, ValueError):
        return {}
