"""The local executor (`resources.executor: local`): a sweep's trials on this machine, without Ray.

Worker processes are forked from a multiprocessing fork server that imported torch and the
trainables once, so a trial starts in milliseconds instead of a Ray actor's seconds. Optuna decides
what runs: TPE (or the listed grid/random/confirm points) and, for ASHA, Optuna's
SuccessiveHalvingPruner, which is asynchronous successive halving. The study lives in an Optuna
journal file beside the sweep's own journal, so an interrupted sweep resumes with its search history;
trials record, retry (`max_failures`, from their last checkpoint) and end as under Ray Tune.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any

from regsweep._ahead import CHECKPOINT_FILE
from regsweep._local_slots import Slot, WorkerPool
from regsweep._local_worker import CHECKPOINT_FOLDER, PENDING_KEY
from regsweep._record import FINAL_STATUSES, STATUS_OF_STOP, TrialRecorder, trial_name
from regsweep._results import journaled_trials
from regsweep._space import OptunaDefineByRun, decode_point

_KEY_ATTR = "regsweep_trial"


@dataclass
class _Running:
    key: str
    params: dict[str, Any]
    task: dict[str, Any]
    trial: Any  # optuna.Trial
    reported: set[int]  # epochs already reported to the study (by this trial before a resume)
    failures: int = 0
    last: dict[str, Any] = field(default_factory=dict)
    told: bool = False  # the study knows how it ended (ASHA pruned it)


def import_stage_modules() -> None:
    """Import what a stage needs (Optuna, its journal storage) ahead of the first stage: the driver calls this
    while its fork server imports torch, when it has nothing else to do."""
    import optuna  # noqa: F401
    from optuna.storages.journal import JournalFileBackend, JournalStorage  # noqa: F401


def run_stage(pool: WorkerPool, paths: Any, stage: str, points: list[dict[str, Any]] | None, restore: bool) -> None:
    """Run one stage to its end in `pool`'s workers: `points` (grid, random, confirm) or Optuna's TPE."""
    _Stage(pool, paths, stage, points, restore).run()


class _Stage:
    def __init__(self, pool: WorkerPool, paths: Any, stage: str, points: list[dict[str, Any]] | None,
                 restore: bool):
        import optuna

        self.pool, self.sweep, self.stage, self.points = pool, pool.sweep, stage, points
        spec = self.sweep.spec
        self.recorder = TrialRecorder(paths.journal, stage, self.sweep.space)
        self.define = OptunaDefineByRun(self.sweep.space, {"seed": 0})
        self.total = len(points) if points is not None else spec.search.num_samples
        self.asha = self.sweep.uses_asha(stage)
        self.budget_ends = time.monotonic() + spec.resources.time_budget_s if spec.resources.time_budget_s else None
        self.trial_root = os.path.join(pool.storage, stage)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        pruner = (optuna.pruners.SuccessiveHalvingPruner(min_resource=spec.scheduler.grace_period,
                                                         reduction_factor=int(spec.scheduler.reduction_factor))
                  if self.asha else optuna.pruners.NopPruner())
        sampler = optuna.samplers.TPESampler(seed=spec.search.seed) if points is None else None
        storage = JournalStorage(JournalFileBackend(str(paths.local / f"optuna-{stage}.log")))
        self.study = optuna.create_study(storage=storage, study_name=stage, sampler=sampler, pruner=pruner,
                                         direction="maximize" if spec.mode == "max" else "minimize",
                                         load_if_exists=True)
        self.unnamed: list[Any] = []  # trials a killed driver asked for and had not named: the next new ones
        self.reruns = self._unfinished(paths.journal if restore else None)
        self.next_new = len({t.user_attrs[_KEY_ATTR] for t in self.study.trials if _KEY_ATTR in t.user_attrs})

    def _unfinished(self, journal: Any) -> list[tuple[Any, set[int]]]:
        """After a killed driver (`journal` given): trials it left running whose end is journaled are told to the
        study; the others run again as the same Optuna trial (so ASHA keeps the epochs they reported and the
        rungs they passed) under their own id (so they resume from their checkpoint). A trial whose end the kill
        kept from the journal gets it now, if the study knows it ended (ASHA's pruning is told before the
        journal) or its last journaled epoch was its last (the worker ends a trial after journaling that one).
        A trial asked for but not yet named when the driver died never ran: it becomes the next new trial."""
        import optuna
        from optuna.trial import TrialState

        if journal is None:
            return []
        ends, last = journaled_trials(journal, self.stage)
        reruns = []
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.PRUNED)):
            key = frozen.user_attrs.get(_KEY_ATTR)
            final = last.get(key, {})
            if key is not None and key not in ends and frozen.state == TrialState.PRUNED:
                self._end(frozen, key, final, "stopped_early",
                          f"asha@{max(frozen.intermediate_values, default=final.get('epoch', 0))}")
            elif frozen.state == TrialState.PRUNED:
                continue
            elif key is not None and key not in ends and final.get("stopped_by") in STATUS_OF_STOP:
                status = STATUS_OF_STOP[final["stopped_by"]]
                self._end(frozen, key, final, status, final["stopped_by"])
                self._tell(frozen.number, status, final["stopped_by"], final)
            elif key in ends:
                end = ends[key]
                self._tell(frozen.number, end.get("status", "error"), str(end.get("stopped_by")), final)
            elif key is None:  # killed between the study's ask and naming the trial: it never ran
                self.unnamed.append(optuna.trial.Trial(self.study, frozen._trial_id))
            else:
                # Optuna's own constructor for a trial already in the study (ask() only makes new ones).
                reruns.append((optuna.trial.Trial(self.study, frozen._trial_id), set(frozen.intermediate_values)))
        return reruns

    def _end(self, trial: Any, key: str, final: dict[str, Any], status: str, stopped_by: str) -> None:
        """Journal the end a killed driver did not write, from the trial's last journaled epoch."""
        params = self._params(trial, key)
        self.recorder.end(key, params, trial_name(params), final, status, stopped_by)

    def _params(self, trial: Any, key: str) -> dict[str, Any]:
        """A trial's parameters: its listed point, or what TPE sampled (with the space's constants)."""
        if self.points is not None:
            return dict(self.points[int(key.rsplit("_", 1)[1])])
        constants = self.define(trial)
        return decode_point({**trial.params, **constants}, self.sweep.space)

    def run(self) -> None:
        try:
            while True:
                self._fill()
                busy = [slot for slot in self.pool.slots if slot.running is not None]
                if not busy:
                    self._drop_unnamed()
                    return
                ready = set(wait([slot.conn for slot in busy] + [slot.process.sentinel for slot in busy]))
                for slot in busy:
                    if slot.conn in ready or slot.process.sentinel in ready:
                        self._receive(slot)
        finally:
            self.recorder.close()

    def _drop_unnamed(self) -> None:
        """Trials asked for before a kill that no new trial took (the time budget ran out first): they never ran."""
        from optuna.trial import TrialState

        for trial in self.unnamed:
            self.study.tell(trial, state=TrialState.FAIL)
        self.unnamed.clear()

    def _over_budget(self) -> bool:
        return self.budget_ends is not None and time.monotonic() >= self.budget_ends

    def _fill(self) -> None:
        for slot in self.pool.slots:
            if slot.running is None and (self.reruns or self.next_new < self.total) and not self._over_budget():
                slot.running = self._next()
                self._send_task(slot)

    def _next(self) -> _Running:
        reported: set[int] = set()
        if self.reruns:
            trial, reported = self.reruns.pop(0)
            key = trial.user_attrs[_KEY_ATTR]
        else:
            trial = self.unnamed.pop(0) if self.unnamed else self.study.ask()
            key = f"{self.stage}_{self.next_new:05d}"
            trial.set_user_attr(_KEY_ATTR, key)
            self.next_new += 1
        params = self._params(trial, key)
        spec = self.sweep.spec
        task = {"trainable": spec.trainable, "config": {**self.sweep.fixed, **params},
                "threads": self.sweep.threads, "checkpoint_every_s": spec.resources.checkpoint_every_s,
                "checkpoint_dir": os.path.join(self.trial_root, key, CHECKPOINT_FOLDER),
                "stoppable": self.asha or self.budget_ends is not None}
        return _Running(key, params, task, trial, reported)

    def _send_task(self, slot: Slot) -> None:
        if slot.process is None or not slot.process.is_alive():
            self.pool.start(slot)
        _send(slot, slot.running.task)

    def _receive(self, slot: Slot) -> None:
        try:
            if not slot.conn.poll():
                raise EOFError
            kind, body = slot.conn.recv()
        except (EOFError, OSError):
            slot.process.join(timeout=5)
            code = slot.process.exitcode
            slot.conn.close()
            slot.process = slot.conn = None
            self._failed(slot, f"WorkerDied: the trial's process ended (exit code {code})", "")
            return
        if kind == "epoch":
            stopped_by = self._epoch(slot.running, body)
            if slot.running.task["stoppable"]:
                _send(slot, "stop" if stopped_by else "go")
            if stopped_by:
                self._finish(slot, "stopped_early", stopped_by)
        elif kind == "end":
            last = slot.running.last
            status = last.get("status") if last.get("status") in FINAL_STATUSES else "completed"
            self._finish(slot, status, last.get("stopped_by") or status)
        else:
            self._failed(slot, body["message"], body["traceback"])

    def _epoch(self, running: _Running, metrics: dict[str, Any]) -> str | None:
        """Journal an epoch; why the trial must stop now (ASHA pruned it, the time budget is spent), or None."""
        from optuna.trial import TrialState

        pending = metrics.pop(PENDING_KEY, None)
        running.last = metrics
        final = metrics.get("status") in FINAL_STATUSES  # its last epoch: the worker ends it
        value, epoch = metrics.get(self.sweep.spec.metric), int(metrics.get("epoch", 0))
        pruned = False
        # Told to the study before the journal: a resumed trial retrains from its last journaled epoch, and
        # the study, which may have that epoch already, is told each epoch once.
        if (self.asha and not final and epoch not in running.reported and isinstance(value, (int, float))
                and math.isfinite(value)):
            running.reported.add(epoch)
            running.trial.report(float(value), epoch)
            pruned = running.trial.should_prune()
            if pruned:
                # Told now, before the journal: a driver killed from here on leaves a trial the study has ended,
                # which a resume journals as ended, not one it would train on past the rung that stopped it.
                self.study.tell(running.trial, state=TrialState.PRUNED)
                running.told = True
        self.recorder.epoch(running.key, running.params, trial_name(running.params), metrics)
        if pending is not None:  # journaled: a resume may now start after this epoch
            os.replace(pending, os.path.join(os.path.dirname(pending), CHECKPOINT_FILE))
        if final:
            return None
        if pruned:
            return f"asha@{epoch}"
        return "time_budget" if self._over_budget() else None

    def _finish(self, slot: Slot, status: str, stopped_by: str, error: str | None = None) -> None:
        running, slot.running = slot.running, None
        self.recorder.end(running.key, running.params, trial_name(running.params), running.last, status,
                          stopped_by, error)
        if not running.told:
            self._tell(running.trial, status, stopped_by, running.last)

    def _tell(self, trial: Any, status: str, stopped_by: str, final: dict[str, Any]) -> None:
        """Tell the study how a trial ended; `final` is its last epoch's metrics."""
        from optuna.trial import TrialState

        value = final.get(self.sweep.spec.metric)
        if status == "error" or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.study.tell(trial, state=TrialState.FAIL)
        elif stopped_by.startswith("asha@") or stopped_by == "time_budget":
            self.study.tell(trial, state=TrialState.PRUNED)
        else:
            self.study.tell(trial, float(value))

    def _failed(self, slot: Slot, message: str, details: str) -> None:
        """Retry from the last checkpoint while `max_failures` allows; then record the error."""
        running = slot.running
        if running.failures < self.sweep.spec.resources.max_failures:
            running.failures += 1
            self._send_task(slot)
            return
        folder = os.path.join(self.trial_root, running.key)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "error.txt"), "w", encoding="utf-8") as handle:
            handle.write(details or message)
        self._finish(slot, "error", "error", message)


def _send(slot: Slot, message: Any) -> None:
    """A worker that died meanwhile is found by its sentinel on the next wait, not here."""
    try:
        slot.conn.send(message)
    except OSError:
        pass
