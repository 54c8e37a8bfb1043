"""One trial: a model trained epoch by epoch on in-memory tensors, resumable from a checkpoint."""

from __future__ import annotations

import copy
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
import torch.nn.functional as F

from trainables._config import CNNConfig, TrainConfig
from trainables.data import load_dataset, split_train_val
from trainables.loop._device import cpu_runs_bf16, pick_device, use_deterministic_kernels
from trainables.loop._eval_rows import eval_rows
from trainables.loop._optim import make_optimizer, make_scheduler
from trainables.models import build_model, count_parameters


@dataclass
class Splits:
    """Arrays of one trial's data; `extras` holds per-row arrays a task needs (weights, groups)."""

    train_x: Any
    train_y: Any
    val_x: Any
    val_y: Any
    test_x: Any
    test_y: Any
    input_shape: tuple[int, ...]
    outputs: int
    extras: dict[str, Any] = field(default_factory=dict)


class Trial:
    """Train one config. Call :meth:`epochs` for per-epoch metric dicts, then :meth:`summary`.

    The whole dataset lives on the trial's device; batches are slices of a random
    permutation, so there are no DataLoader workers and no per-sample Python.
    """

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = pick_device(cfg.device)
        if cfg.bf16 and self.device.type == "cpu" and not cpu_runs_bf16():
            # Said, not refused: the same spec may run on a cluster whose CPUs have the units.
            warnings.warn("bf16: true, but this CPU has no bf16 units (AMX or AVX512-BF16) and oneDNN emulates "
                          "bf16: the 28x28 CNN trained 8x slower than in fp32 on such a CPU (BENCHMARKS.md); "
                          "set bf16: false to train in fp32 here", RuntimeWarning, stacklevel=2)
        if cfg.deterministic:
            use_deterministic_kernels()
        splits = self.load_splits()
        # oneDNN convolutions run about 1.4x faster on channels-last images; on an H200 these small CNNs
        # ran 0.83-1.08x as fast that way (BENCHMARKS.md, GPU), so GPUs keep the default layout.
        channels_last = isinstance(cfg, CNNConfig) and self.device.type == "cpu"
        layout = torch.channels_last if channels_last else torch.contiguous_format
        self.memory_format = layout
        self.train_x, self.train_y = self.as_tensor(splits.train_x), self.as_tensor(splits.train_y)
        self.val_x, self.val_y = self.as_tensor(splits.val_x), self.as_tensor(splits.val_y)
        self._test = (splits.test_x, splits.test_y)
        self.extras = {k: self.as_tensor(v) for k, v in splits.extras.items()}

        torch.manual_seed(cfg.seed)
        self.model = self.build_model(splits).to(self.device, memory_format=layout)
        self.params = count_parameters(self.model)
        self._penalised = [p for p in self.model.parameters() if p.dim() > 1]
        self.optimizer = make_optimizer(cfg, self.model)
        self.scheduler = make_scheduler(cfg, self.optimizer)
        self.batch_order = torch.Generator().manual_seed(cfg.seed + 1)

        self.epoch = 0
        self.best = {"epoch": 0, "val_loss": math.inf, "val_acc": 0.0}
        self.best_state: dict[str, torch.Tensor] | None = None
        self.bad_epochs = 0
        self.status = "running"
        self._eval_rows: int | None = None  # rows per evaluation chunk, measured by the first evaluation
        self.stopped_by: str | None = None

    @classmethod
    def check_data(cls, cfg: TrainConfig) -> None:
        """Load the data a trial of `cfg` trains on and build its model for that data (on the meta device), as
        the trial would, and nothing else: a sweep's data check, before any trial starts. No device is touched
        and no optimiser made: the first optimiser a process makes imports torch._dynamo (1.5-2.7 s here), which
        a driver that trains nothing never needs, and a GPU context would hold memory for the whole sweep."""
        probe = cls.__new__(cls)  # the task's hooks, without __init__'s device, tensors and optimiser
        probe.cfg = cfg
        splits = probe.load_splits()
        with torch.device("meta"):
            probe.build_model(splits)

    # Hooks that a task (classification here; regression, forecasting) overrides. load_splits and build_model
    # may read only self.cfg and what load_splits itself sets: check_data runs them without __init__.
    classification = True

    def load_splits(self) -> Splits:
        """Train, validation (from the trial's seed) and held-out test arrays."""
        cfg = self.cfg
        data = load_dataset(cfg.dataset, cfg.data_dir)
        train_idx, val_idx = split_train_val(data.train_y, cfg.val_fraction, cfg.seed)
        return Splits(data.train_x[train_idx], data.train_y[train_idx], data.train_x[val_idx],
                      data.train_y[val_idx], data.test_x, data.test_y, data.image_shape, data.num_classes)

    def build_model(self, splits: Splits) -> torch.nn.Module:
        """The config's model for these splits' input shape and number of outputs (on the CPU)."""
        return build_model(self.cfg, splits.input_shape, splits.outputs)

    def batch_loss(self, outputs: torch.Tensor, target: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Mean loss of a training batch (`index` selects the batch's rows, for per-row weights)."""
        return F.cross_entropy(outputs.float(), target)

    def as_tensor(self, array: Any) -> torch.Tensor:
        """`array` as a tensor on the trial's device, images in the trial's memory format."""
        tensor = torch.as_tensor(array, device=self.device)
        return tensor.contiguous(memory_format=self.memory_format) if tensor.dim() == 4 else tensor

    @property
    def finished(self) -> bool:
        """Whether the trial has ended (completed, stopped early or diverged)."""
        return self.status != "running"

    def penalty(self) -> torch.Tensor:
        """L1 and L2 penalties on the weights (not biases or norm scales)."""
        total = torch.zeros((), device=self.device)
        if self.cfg.l1:
            total = total + self.cfg.l1 * sum(p.abs().sum() for p in self._penalised)
        if self.cfg.l2:
            total = total + self.cfg.l2 * sum(p.pow(2).sum() for p in self._penalised)
        return total

    def _autocast(self):
        # On the CPU too: oneDNN runs bf16 convolutions and matmuls on AMX / AVX512-BF16 units (1.75x
        # faster epochs for the 28x28 CNN on a Xeon); CPUs without them emulate bf16, 8x slower on an EPYC.
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16)

    def _train_one_epoch(self) -> dict[str, float]:
        self.model.train()
        n, batch = len(self.train_y), self.cfg.batch_size
        order = torch.randperm(n, generator=self.batch_order).to(self.device)
        loss_sum = torch.zeros((), device=self.device)
        penalty_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        penalised = bool(self.cfg.l1 or self.cfg.l2)
        # On a GPU, checking each batch for NaN would wait for the GPU at every batch; the sums below
        # carry any NaN or inf to the epoch's end instead, where one check ends a diverged trial.
        check_each_batch = self.device.type == "cpu"
        for start in range(0, n, batch):
            idx = order[start : start + batch]
            x, y = self.train_x[idx], self.train_y[idx]
            with self._autocast():
                logits = self.model(x)
                loss = self.batch_loss(logits, y, idx)
            objective = loss
            if penalised:
                penalty = self.penalty()
                objective = loss + penalty
                penalty_sum += penalty.detach() * len(y)
            if check_each_batch and not torch.isfinite(objective):
                return {"diverged": True}
            self.optimizer.zero_grad(set_to_none=True)
            objective.backward()
            if self.cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            self.optimizer.step()
            # Accumulate on the device; one sync per epoch instead of one per batch.
            loss_sum += loss.detach() * len(y)
            if self.classification:
                correct += (logits.argmax(1) == y).sum()
        if not torch.isfinite(loss_sum + penalty_sum):
            return {"diverged": True}
        metrics = {"train_loss": loss_sum.item() / n, "train_penalty": penalty_sum.item() / n}
        if self.classification:
            metrics["train_acc"] = correct.item() / n
        return metrics

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, split: str) -> dict[str, float]:
        """Metrics of the current model on one split: {'loss': ..., 'acc': ...} here."""
        loss, acc = self._classification_metrics(x, y)
        return {"loss": loss, "acc": acc}

    def _classification_metrics(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        self.model.eval()
        loss_sum, correct = 0.0, 0
        if self._eval_rows is None:
            self._eval_rows = eval_rows(self.model, x[:1])
        rows = self._eval_rows
        for start in range(0, len(y), rows):
            with self._autocast():
                logits = self.model(x[start : start + rows]).float()
            target = y[start : start + rows]
            loss_sum += F.cross_entropy(logits, target, reduction="sum").item()
            correct += (logits.argmax(1) == target).sum().item()
        return loss_sum / len(y), correct / len(y)

    def run_epoch(self) -> dict[str, Any]:
        """Train and validate one epoch; return the epoch's flat metric dict."""
        if self.finished:
            raise RuntimeError(f"trial already ended ({self.status})")
        started = time.perf_counter()
        self.epoch += 1
        lr = self.optimizer.param_groups[0]["lr"]
        train = self._train_one_epoch()
        if train.get("diverged"):
            self.status, self.stopped_by = "diverged", "diverged"
            return {"epoch": self.epoch, "lr": lr, "status": "diverged", "diverged_epoch": self.epoch}
        val = {f"val_{k}": v for k, v in self.evaluate(self.val_x, self.val_y, "val").items()}
        val_loss = val["val_loss"]
        if not math.isfinite(val_loss):
            self.status, self.stopped_by = "diverged", "diverged"
            return {"epoch": self.epoch, "lr": lr, **train, "status": "diverged", "diverged_epoch": self.epoch}
        self._step_schedule(val_loss)
        self._track_best(val_loss, val.get("val_acc"))
        seconds = time.perf_counter() - started
        return {
            "epoch": self.epoch, **train, **val,
            "gap": val_loss - train["train_loss"], "lr": lr, "epoch_seconds": seconds,
            "samples_per_second": len(self.train_y) / seconds, "status": self.status,
        }

    def _step_schedule(self, val_loss: float) -> None:
        if self.scheduler is None:
            return
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(val_loss)
        else:
            self.scheduler.step()

    def _track_best(self, val_loss: float, val_acc: float | None) -> None:
        if val_acc is not None:
            self.best["val_acc"] = max(self.best["val_acc"], val_acc)
        if val_loss < self.best["val_loss"]:
            self.best.update(epoch=self.epoch, val_loss=val_loss)
            self.bad_epochs = 0
            if self.cfg.eval_test:
                self.best_state = copy.deepcopy(self.model.state_dict())
        else:
            self.bad_epochs += 1
        if self.cfg.patience and self.bad_epochs >= self.cfg.patience:
            self.status, self.stopped_by = "stopped_early", "patience"
        elif self.epoch >= self.cfg.epochs:
            self.status, self.stopped_by = "completed", "completed"

    def epochs(self) -> Iterator[dict[str, Any]]:
        """Run the remaining epochs, yielding each epoch's metrics."""
        while not self.finished:
            yield self.run_epoch()

    def summary(self) -> dict[str, Any]:
        """Final metrics: params, best epoch and values, and test metrics when asked."""
        result = {
            "status": self.status, "stopped_by": self.stopped_by, "epochs_trained": self.epoch,
            "params": self.params, "best_epoch": self.best["epoch"],
            "best_val_loss": self.best["val_loss"], "device": self.device.type,
        }
        if self.classification:
            result["best_val_acc"] = self.best["val_acc"]
        if self.cfg.eval_test and self.status != "diverged":
            if self.best_state is not None:
                self.model.load_state_dict(self.best_state)
            test = self.evaluate(self.as_tensor(self._test[0]), self.as_tensor(self._test[1]), "test")
            result.update({f"test_{k}": v for k, v in test.items()})
        return result

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this trial is: weights, optimiser,
        schedule, both random streams and the early-stopping bookkeeping."""
        return {
            "epoch": self.epoch, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "torch_rng": torch.get_rng_state(), "batch_order_rng": self.batch_order.get_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
            "best": dict(self.best), "best_state": self.best_state, "bad_epochs": self.bad_epochs,
            "status": self.status, "stopped_by": self.stopped_by,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state written by :meth:`state_dict`."""
        self.epoch = state["epoch"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        # Random states are CPU byte tensors whatever device the trial trains on.
        torch.set_rng_state(state["torch_rng"].cpu())
        self.batch_order.set_state(state["batch_order_rng"].cpu())
        if state["cuda_rng"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state_all([rng.cpu() for rng in state["cuda_rng"]])
        self.best, self.best_state = dict(state["best"]), state["best_state"]
        self.bad_epochs, self.status, self.stopped_by = state["bad_epochs"], state["status"], state["stopped_by"]

    def save(self, path: str) -> None:
        """Write the checkpoint to a file."""
        torch.save(self.state_dict(), path)

    def load(self, path: str) -> None:
        """Continue from a checkpoint file written by :meth:`save` (on this device or another one)."""
        # Loaded on the CPU: the model and optimiser copy their tensors to the trial's device, and the
        # random states must stay CPU tensors (a GPU trial's resume failed when they were mapped to it).
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=False))
