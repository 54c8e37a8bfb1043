"""User trainables (package.module:function) used by the engine tests."""

import time


def crashes_on_boom(config):
    """Reports two epochs, except for mode 'boom', which raises after its first epoch."""
    for epoch in (1, 2):
        if config["mode"] == "boom" and epoch == 2:
            raise RuntimeError("the user's trainable exploded at epoch 2")
        yield {"epoch": epoch, "val_acc": 0.5 + 0.1 * epoch}


def slow_epochs(config):
    """Epochs that take a while, for interruption tests. With `hold` (a path), every epoch from `hold_from`
    (default 2) on waits until that file exists (at most 5 minutes): a test's event then lands inside the sweep
    however slow the machine."""
    import os

    hold_from = config.get("hold_from", 2)
    for epoch in range(1, config.get("epochs", 3) + 1):
        time.sleep(config.get("sleep", 0.5))
        deadline = time.time() + 300
        while (epoch >= hold_from and config.get("hold") and not os.path.exists(config["hold"])
               and time.time() < deadline):
            time.sleep(0.05)
        yield {"epoch": epoch, "val_acc": config["x"] * epoch}


def waits_for_company(config):
    """Trains only once `company` trials have started (a file each in `folder`; at most 2 minutes): trials that
    overlap whatever the machine's speed, where short ones would finish before the next actor is up."""
    import os

    open(os.path.join(config["folder"], str(config["x"])), "w").close()
    deadline = time.time() + 120
    while len(os.listdir(config["folder"])) < config["company"] and time.time() < deadline:
        time.sleep(0.05)
    for epoch in range(1, config.get("epochs", 2) + 1):
        time.sleep(config.get("sleep", 0.1))
        yield {"epoch": epoch, "val_acc": config["x"] * epoch}


def reports_visible_gpus(config):
    """Reports which GPUs Ray left visible to the trial (CUDA_VISIBLE_DEVICES, or 'unset')."""
    import os

    yield {"epoch": 1, "val_acc": 0.5, "visible_gpus": os.environ.get("CUDA_VISIBLE_DEVICES", "unset")}


def reports_its_process(config):
    """Reports the process the trial ran in, and whether Tune's PL_DISABLE_FORK reached it."""
    import os

    yield {"epoch": 1, "val_acc": 0.5, "process": os.getpid(),
           "pl_disable_fork": os.environ.get("PL_DISABLE_FORK", "unset")}


def reports_frozen_objects(config):
    """Reports how many objects the garbage collector of the trial's process holds frozen (gc.freeze), and
    whether the collector is on (1.0) or off (0.0)."""
    import gc

    yield {"epoch": 1, "val_acc": 0.5, "frozen": gc.get_freeze_count(), "collecting": float(gc.isenabled())}


def fails_then_counts(config):
    """Counts its attempts in a file of `counter_dir`; fails its first `fail_times` attempts, then reports
    two epochs. mode 'raise' raises; mode 'die' ends its process abruptly (a crash it cannot report)."""
    import os

    counter = os.path.join(config["counter_dir"], f"{config['mode']}-{config['fail_times']}")
    attempts = (int(open(counter).read()) if os.path.exists(counter) else 0) + 1
    with open(counter, "w") as handle:
        handle.write(str(attempts))
    if attempts <= config.get("fail_times", 0):
        if config.get("mode") == "die":
            os._exit(3)
        raise ValueError(f"attempt {attempts} failed on purpose")
    for epoch in (1, 2):
        yield {"epoch": epoch, "val_acc": 0.5 + 0.1 * epoch, "attempts": attempts}


def loads_with_dataloader_workers(config):
    """Sums a dataset through a DataLoader with worker processes of its own, once per epoch."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(torch.arange(100.0)), batch_size=10, num_workers=2)
    for epoch in (1, 2):
        yield {"epoch": epoch, "val_acc": 0.5, "total": float(sum(batch[0].sum() for batch in loader))}


def overfits(config):
    """Reports train_loss and val_loss, and no `gap` of its own: at its last epoch val_loss is `gap` above
    train_loss."""
    for epoch in (1, 2):
        yield {"epoch": epoch, "train_loss": 1.0 / epoch, "val_loss": 1.0 / epoch + config["gap"] * epoch / 2}
