"""Epoch throughput: regsweep's trainable vs a minimal hand-written loop vs the journals' DataLoader loop.

All three train the same model (same config, same seed) for the same epochs on the same data and
validate once per epoch; the figure is samples per second of the whole epoch, side by side in one run.
The two hand-written loops build the CNN in the journals' order (Conv -> Norm -> ReLU -> Dropout -> Pool);
regsweep's runs ReLU and Dropout2d after the pool, the same function bit for bit (tests/test_models.py).

    python bench/epoch_throughput.py            # mnist_5k (28x28), 3 epochs
    python bench/epoch_throughput.py --quick    # digits, 2 epochs
    python bench/epoch_throughput.py --bf16     # adds regsweep under bf16 autocast (not like for like)
    python bench/epoch_throughput.py --device cuda --bf16   # on a GPU

On a GPU the minimal loop keeps its tensors on the GPU; the DataLoader loop, like the journals' code,
builds batches on the CPU and moves each one with `.to(device)`.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import torch
import torch.nn.functional as F
import numpy as np
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from trainables import CNNConfig, Trial
from trainables.data import load_dataset, split_train_val
from trainables.models import build_cnn


def tensors(cfg: CNNConfig, device: str = "cpu"):
    data = load_dataset(cfg.dataset)
    train_idx, val_idx = split_train_val(data.train_y, cfg.val_fraction, cfg.seed)
    t = functools.partial(torch.as_tensor, device=device)
    return (t(data.train_x[train_idx]), t(data.train_y[train_idx]), t(data.train_x[val_idx]),
            t(data.train_y[val_idx]), data)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def regsweep_epochs(cfg: CNNConfig, epochs: int) -> list[float]:
    trial = Trial(cfg)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        trial.run_epoch()  # ends with .item() on its metrics: the GPU has finished the epoch
        times.append(time.perf_counter() - start)
    return times


def minimal_epochs(cfg: CNNConfig, epochs: int) -> list[float]:
    """The shortest correct loop a person would write: permutation slices, Adam, a val pass."""
    train_x, train_y, val_x, val_y, data = tensors(cfg, cfg.device)
    torch.manual_seed(cfg.seed)
    model = build_cnn(cfg, data.image_shape, data.num_classes, textbook_order=True).to(cfg.device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    times = []
    for _ in range(epochs):
        _sync(cfg.device)
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(train_y), device=cfg.device)
        for i in range(0, len(train_y), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            loss = F.cross_entropy(model(train_x[idx]), train_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            F.cross_entropy(model(val_x), val_y).item()
        times.append(time.perf_counter() - start)
    return times


class TorchvisionStyleImages(Dataset):
    """What `torchvision.datasets.FashionMNIST(transform=ToTensor())` does per sample:
    uint8 array -> PIL image -> float tensor in [0, 1]. (torchvision itself is not importable
    beside the CPU torch wheel here, so its two steps are written out.)"""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images = (images[:, 0] * 255).round().to(torch.uint8).numpy()
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        image = Image.fromarray(self.images[i])
        tensor = torch.from_numpy(np.array(image, dtype=np.uint8)).float().div(255).unsqueeze(0)
        return tensor, int(self.labels[i])


def dataloader_epochs(cfg: CNNConfig, epochs: int) -> list[float]:
    """The seed journals' loop: a torchvision-style dataset, DataLoader(shuffle=True), metrics per batch."""
    train_x, train_y, val_x, val_y, data = tensors(cfg)
    torch.manual_seed(cfg.seed)
    model = build_cnn(cfg, data.image_shape, data.num_classes, textbook_order=True).to(cfg.device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    train_loader = DataLoader(TorchvisionStyleImages(train_x, train_y), batch_size=cfg.batch_size, shuffle=True)
    val_loader = DataLoader(TorchvisionStyleImages(val_x, val_y), batch_size=cfg.batch_size)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.train()
        running, correct = 0.0, 0
        for x, y in train_loader:
            x, y = x.to(cfg.device), y.to(cfg.device)
            opt.zero_grad()
            out = model(x)
            loss = F.cross_entropy(out, y)
            loss.backward()
            opt.step()
            running += loss.item() * len(y)
            correct += (out.argmax(1) == y).sum().item()
        model.eval()
        with torch.no_grad():
            for x, y in val_loader:
                x, y = x.to(cfg.device), y.to(cfg.device)
                F.cross_entropy(model(x), y, reduction="sum").item()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--bf16", action="store_true",
                        help="also time regsweep under bf16 autocast (the other loops stay fp32)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda given, but torch sees no CUDA device")
    torch.set_num_threads(args.threads)
    dataset, epochs = ("digits", 3) if args.quick else ("mnist_5k", 3)
    cfg = CNNConfig(dataset=dataset, epochs=epochs + 1, filters=32, layers=2, norm="batch", dropout=0.1,
                    batch_size=64, device=args.device)
    samples = len(tensors(cfg)[1])
    loops = [("regsweep", regsweep_epochs, cfg), ("minimal", minimal_epochs, cfg),
             ("dataloader", dataloader_epochs, cfg)]
    if args.bf16:
        loops.append(("regsweep bf16", regsweep_epochs, cfg.model_copy(update={"bf16": True})))
    results = {}
    # Interleave the loops so drift on a shared machine hits all of them alike.
    for _ in range(2):
        for name, fn, loop_cfg in loops:
            # The first epoch warms up allocators and kernels; it is not counted.
            results.setdefault(name, []).extend(fn(loop_cfg, epochs + 1)[1:])
    rate = {name: samples / statistics.median(times) for name, times in results.items()}
    device = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"dataset={dataset} train_samples={samples} device={device} threads={args.threads} "
          f"batch_size={cfg.batch_size}")
    for name, value in rate.items():
        print(f"  {name:<13} {value:9.0f} samples/s (median epoch {statistics.median(results[name]):.3f}s)")
    print(f"regsweep vs minimal loop:    {rate['regsweep'] / rate['minimal']:.2f}x (target >= 1.0x)")
    print(f"regsweep vs DataLoader loop: {rate['regsweep'] / rate['dataloader']:.2f}x (target >= 2.0x)")
    if args.bf16:
        print(f"regsweep bf16 vs fp32:       {rate['regsweep bf16'] / rate['regsweep']:.2f}x (not like for like)")
        print(f"regsweep bf16 vs DataLoader: {rate['regsweep bf16'] / rate['dataloader']:.2f}x (not like for like)")


if __name__ == "__main__":
    main()
