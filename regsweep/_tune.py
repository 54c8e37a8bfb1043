"""Ray Tune glue: the function trainable that wraps a regsweep trainable, the callback that
journals every result on the driver, and building, running or restoring one stage's Tuner."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Diverged epochs carry no validation metric; Tune must accept that instead of failing the trial.
os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", "4")
# Tune's own JSON/CSV/TensorBoard loggers re-encode every result on the driver; regsweep's journal and
# Parquet table are the record, and on two cores that driver time is taken from the trials.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
# Snapshot the experiment every 2 s (Tune's automatic period starts at 10 s): after a crash, trials
# resume from the checkpoints this snapshot knows. Trials that ended after it are known from the journal.
os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
# Tune's own Ctrl-C handler stops the trials it was running as TERMINATED and returns as if the stage had
# finished, so the sweep would be marked finished and never resumed. Without it Ctrl-C raises
# KeyboardInterrupt: the sweep is left interrupted, and resumes from the journal and Tune's last snapshot.
os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")

import ray  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.progress_reporter import TrialProgressCallback  # noqa: E402
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler  # noqa: E402
from ray.tune.search import ConcurrencyLimiter  # noqa: E402
from ray.tune.search.optuna import OptunaSearch  # noqa: E402

from regsweep._ahead import CHECKPOINT_FILE, epochs_with_checkpoints, report_ahead  # noqa: E402
from regsweep._record import FINAL_STATUSES, TrialRecorder, trial_name, trial_params  # noqa: E402
from regsweep._results import ended_trials  # noqa: E402
from regsweep._space import OptunaDefineByRun  # noqa: E402
from regsweep._spec import SpecError  # noqa: E402
from regsweep._tune_storage import stage_path, tune_filesystem  # noqa: E402
from regsweep._validate import Sweep, load_user_trainable  # noqa: E402
from trainables import Problem  # noqa: E402



@dataclass(frozen=True)
class TrialPayload:
    """What every trial of a stage shares, shipped once to the workers."""

    trainable: str
    fixed: dict[str, Any]
    space: dict[str, Any]
    threads: int
    checkpoint_every_s: float
    ended: frozenset[str] = frozenset()  # on resume: trials the journal shows finished


def run_trial(config: dict[str, Any], payload: TrialPayload) -> None:
    """The Ray Tune function trainable: one epoch per report; a checkpoint with the last epoch and
    whenever `checkpoint_every_s` of training passed since the previous one."""
    if tune.get_context().get_trial_id() in payload.ended:
        return  # it finished before the driver died, after Tune's last snapshot: nothing to train
    params = trial_params(config, payload.space)
    full = {**payload.fixed, **params}
    # Where and since when this attempt runs: the results show how trials spread and packed.
    placement = {"node_id": ray.get_runtime_context().get_node_id(), "attempt_started_at": time.time()}
    if payload.trainable.count(":") == 1:
        for metrics in load_user_trainable(payload.trainable)(full):
            tune.report({**metrics, **placement})
        return
    import regsweep._preload  # noqa: F401  (the worker's first trial: torch imported with the collector paused)
    import trainables

    spec = trainables.get_trainable(payload.trainable)
    full.setdefault("threads", payload.threads)
    trial = spec.make_trial(full)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            trial.load(os.path.join(folder, CHECKPOINT_FILE))

    def report(metrics: dict[str, Any], folder: str | None) -> None:
        metrics.update(placement)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder) if folder else None)

    # Saving every epoch of a 50 ms epoch costs more than the epoch, and every saved checkpoint counts
    # towards Tune's forced experiment snapshots; a crash loses at most checkpoint_every_s of training.
    report_ahead(epochs_with_checkpoints(trial, CHECKPOINT_FILE, payload.checkpoint_every_s), report)


class JournalCallback(tune.Callback):
    """Driver-side: journals each result before Tune snapshots the experiment, so a resumed trial
    can only repeat epochs (deduplicated later), never skip them. Holds no open state when pickled."""

    def __init__(self, journal_path: Path, stage: str, space: dict[str, Any], epochs: int, asha: bool,
                 time_budget: bool = False):
        self.recorder = TrialRecorder(journal_path, stage, space)
        self.stage, self.space, self.epochs, self.asha, self.time_budget = stage, space, epochs, asha, time_budget
        self._last: dict[str, dict[str, Any]] = {}
        # Trials whose end is journaled. A new stage's trials get new ids, so none of them can have ended
        # yet; only a callback unpickled by Tuner.restore (below) needs the journal.
        self._ended: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_last": {}, "_ended": set()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Unpickled by Tuner.restore: trials the journal shows ended get no second end record.
        self.__dict__.update(state)
        self._ended = set(ended_trials(self.recorder.journal.path, self.stage))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self._last[trial.trial_id] = result
        self.recorder.epoch(trial.trial_id, trial_params(trial.config, self.space), str(trial), result)

    def _end(self, trial: Any, status: str, stopped_by: str, error: str | None = None) -> None:
        self._ended.add(trial.trial_id)
        last = self._last.pop(trial.trial_id, None) or trial.last_result or {}
        self.recorder.end(trial.trial_id, trial_params(trial.config, self.space), str(trial), last, status,
                          stopped_by, error)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id in self._ended:
            return
        last = self._last.get(trial.trial_id) or trial.last_result or {}
        status = last.get("status")
        if status in FINAL_STATUSES:
            self._end(trial, status, last.get("stopped_by") or status)
        elif self.asha and last.get("training_iteration", 0) < self.epochs:
            # Ended by the scheduler before its budget, at an ASHA rung.
            self._end(trial, "stopped_early", f"asha@{last.get('training_iteration', 0)}")
        else:
            self._end(trial, "completed", "completed")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id in self._ended:
            return
        self._end(trial, "error", "error", _error_message(trial))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        # Tune stops the trials still running at resources.time_budget_s without on_trial_complete.
        for trial in trials if self.time_budget else ():
            reported = trial.trial_id in self._last or (trial.last_result or {}).get("training_iteration")
            if trial.status == "TERMINATED" and trial.trial_id not in self._ended and reported:
                self._end(trial, "stopped_early", "time_budget")
        self.recorder.close()


class _SilentTrialProgress(TrialProgressCallback):
    """Tune adds its own trial printer unless given one, and that prints "Trial ... completed. Last result:"
    at any verbosity for a trial that reported nothing (those a resume skips). regsweep's view shows trials."""

    def _print(self, msg: str) -> None:
        pass


def _error_message(trial: Any) -> str:
    """The exception line of the trial's latest failure (Tune writes the error file locally first)."""
    text = ""
    local = getattr(trial, "error_file", None)
    if local and os.path.exists(local):
        with open(local, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    elif trial.get_error() is not None:
        text = str(trial.get_error())
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error (see the trial's error.txt)"


def check_fits(sweep: Sweep) -> None:
    """A local Ray that cannot place one trial would leave the sweep waiting forever: say so first.
    A cluster (RAY_ADDRESS) is not checked, since its autoscaler may add the nodes a trial needs."""
    if os.environ.get("RAY_ADDRESS"):
        return
    have = ray.cluster_resources()
    problems = []
    for key, asked in (("cpu", sweep.spec.resources.cpu), ("gpu", sweep.spec.resources.gpu)):
        available = have.get(key.upper(), 0.0)
        if asked > available:
            problems.append(Problem(f"resources.{key}", asked, f"each trial asks for this much, but the local Ray has "
                                    f"{available:g} {key.upper()}s in all; ask for at most {available:g}, or run on a "
                                    "machine or cluster (RAY_ADDRESS) that has them", str(sweep.spec_path)))
    if problems:
        raise SpecError(problems)


def quiet_tune() -> None:
    """Ray Tune's own tables and trial tracebacks stay silent: regsweep records and shows them."""
    for name in ("ray.tune", "ray.train", "ray.air"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _trial_name(trial: Any) -> str:
    return trial_name(trial_params(trial.config, {}))


def build_tuner(sweep: Sweep, stage: str, storage: str, callback: JournalCallback,
                points: list[dict[str, Any]] | None) -> tune.Tuner:
    """A Tuner for one stage: a list of points (grid, random, confirm) or Optuna's TPE search."""
    spec = sweep.spec
    trainable = _trainable(sweep)
    if points is not None:
        search_alg, num_samples = None, 1
        param_space = {"point": tune.grid_search(points)}
    else:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        define = OptunaDefineByRun(sweep.space, {"seed": 0})
        sampler = optuna.samplers.TPESampler(seed=spec.search.seed)
        search_alg = OptunaSearch(space=define, metric=spec.metric, mode=spec.mode, sampler=sampler)
        if spec.search.max_concurrent:
            search_alg = ConcurrencyLimiter(search_alg, max_concurrent=spec.search.max_concurrent)
        num_samples, param_space = spec.search.num_samples, None
    use_asha = sweep.uses_asha(stage)
    scheduler = ASHAScheduler(max_t=sweep.epochs, grace_period=spec.scheduler.grace_period,
                              reduction_factor=spec.scheduler.reduction_factor) if use_asha else FIFOScheduler()
    tune_config = tune.TuneConfig(
        metric=spec.metric, mode=spec.mode, search_alg=search_alg, scheduler=scheduler, num_samples=num_samples,
        max_concurrent_trials=spec.search.max_concurrent if points is not None else None,
        time_budget_s=spec.resources.time_budget_s, reuse_actors=True, trial_name_creator=_trial_name,
        trial_dirname_creator=lambda trial: trial.trial_id,
    )
    storage_filesystem, storage_path = tune_filesystem(storage)
    run_config = tune.RunConfig(
        name=stage, storage_path=storage_path, storage_filesystem=storage_filesystem, verbose=0,
        callbacks=[callback, _SilentTrialProgress(metric=spec.metric)],
        failure_config=tune.FailureConfig(max_failures=spec.resources.max_failures),
        # Tune snapshots the experiment whenever a trial has saved num_to_keep checkpoints since the last
        # snapshot; with 1 that is every checkpoint, a full JSON + searcher pickle each time (O(N^2)).
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
    )
    return tune.Tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config)


def restore_tuner(sweep: Sweep, stage: str, storage: str, ended: frozenset[str]) -> tune.Tuner:
    """Reopen an interrupted stage: finished trials stay finished (those in Tune's snapshot and those
    `ended` per the journal), unfinished ones resume from their last checkpoint, errored ones are
    not rerun."""
    storage_filesystem, path = tune_filesystem(stage_path(storage, stage))
    return tune.Tuner.restore(path, trainable=_trainable(sweep, ended),
                              resume_unfinished=True, resume_errored=False, restart_errored=False,
                              storage_filesystem=storage_filesystem)


def _trainable(sweep: Sweep, ended: frozenset[str] = frozenset()) -> Any:
    """The stage's Tune trainable: run_trial with the shared payload and the spec's resources."""
    spec = sweep.spec
    payload = TrialPayload(spec.trainable, sweep.fixed, sweep.space, sweep.threads,
                           spec.resources.checkpoint_every_s, ended)
    return tune.with_resources(tune.with_parameters(run_trial, payload=payload),
                               {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu})
