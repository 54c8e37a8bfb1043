"""A trainable that does no work, for measuring regsweep's own cost per trial."""


def noop(config):
    yield {"epoch": 1, "val_acc": float(config.get("x", 0.0))}
