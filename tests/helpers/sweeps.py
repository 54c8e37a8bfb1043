"""What several sweep tests read back from a finished sweep."""

import optuna
from optuna.storages.journal import JournalFileBackend, JournalStorage


def trial_ends(frame):
    """Each trial's last row (its end) in a results frame."""
    return frame.sort_values("epoch").groupby(["stage", "trial_id"]).tail(1)


def search_study(results, name):
    """The Optuna study of a local-executor sweep's search stage, from its journal file."""
    log = str(results / name / "optuna-search.log")
    return optuna.load_study(study_name="search", storage=JournalStorage(JournalFileBackend(log)))
