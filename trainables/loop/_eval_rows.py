"""How many rows one evaluation pass gives the model at once."""

from __future__ import annotations

import torch

# 16 MB of float32 in the widest activation of one chunk. Larger chunks slowed the CPU evaluation of the 28x28 CNN
# (32 filters: 100 KB per row): glibc serves allocations over 32 MB with fresh pages, faulted in anew on every pass.
# Validating 800 rows took 0.38 s in one chunk of 2048 (75,000 page faults) against 0.21 s in chunks of 128
# (BENCHMARKS.md, session 28).
_BUDGET_VALUES = 2**22
MIN_ROWS, MAX_ROWS = 64, 2048


@torch.no_grad()
def eval_rows(model: torch.nn.Module, row: torch.Tensor) -> int:
    """Rows per evaluation chunk: on the CPU, as many as keep the model's widest activation within 16 MB, at
    least 64 and at most 2048; on a GPU, whose caching allocator keeps its memory, 2048. `row` is one input row
    (a batch of one) on the model's device; the model runs it once, so it must be in eval mode (no running
    statistics updated, no dropout drawn)."""
    if model.training:
        raise ValueError("eval_rows runs the model on a sample; call it in eval mode (model.eval())")
    if row.device.type != "cpu":
        return MAX_ROWS
    widest = 1

    def note(module: torch.nn.Module, inputs: object, output: object) -> None:
        nonlocal widest
        if isinstance(output, torch.Tensor):
            widest = max(widest, output.numel())

    leaves = [m for m in model.modules() if next(m.children(), None) is None]
    hooks = [m.register_forward_hook(note) for m in leaves]
    try:
        model(row)
    finally:
        for hook in hooks:
            hook.remove()
    return max(MIN_ROWS, min(MAX_ROWS, _BUDGET_VALUES // widest))
