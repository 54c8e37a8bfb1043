"""Where a trial runs: its device, reproducible GPU kernels, and whether this CPU has bf16 units."""

from __future__ import annotations

import os

import torch


def pick_device(name: str) -> torch.device:
    """The device of a config's `device`: `auto` is the GPU when torch sees one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def cpu_runs_bf16() -> bool:
    """Whether oneDNN has bf16 units on this CPU (AMX or AVX512-BF16); without them it emulates bf16."""
    supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)  # private; absent in some builds
    return bool(supported()) if supported is not None else True


def use_deterministic_kernels() -> None:
    """cuDNN and cuBLAS pick kernels whose float sums vary run to run; ask for reproducible ones.
    This is process-wide (as in PyTorch itself): later trials in the same process keep it."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
