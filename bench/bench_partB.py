"""Part B benchmark: training throughput of the course UNets, and the class-FM quality run.

    python bench/bench_partB.py                       # throughput table, CPU (and CUDA if present)
    python bench/bench_partB.py --models class --steps 3 --no-compile
    python bench/bench_partB.py --class-fm-quality    # course train class-fm (offline preset) + evaluate

Throughput is images per second of full training steps (forward, loss, backward, Adam), measured side
by side in one run; each row's ratio is against the first row of its model and device ("tensor":
the whole dataset as a device tensor, batches by indexing a permutation — what reference.training does).
Other rows: a DataLoader over the Dataset (0 or 2 workers), channels_last, torch.compile, thread counts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from fwd_kit import data as digits
from reference import training

MODELS = {  # name: (experiment whose loss is timed, width D, batch size) — the course settings
    "uncond": ("denoiser", 128, 256),
    "time": ("time-fm", 64, 64),
    "class": ("class-fm", 64, 64),
}


def _batches(setting: str, dataset, device, batch_size: int, memory_format):
    """An endless iterator of (x float (B, 1, 28, 28) in [0, 1], labels (B,)) on ``device``."""
    if setting.startswith("dataloader"):
        workers = int(setting.split("-")[1])
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                                             drop_last=True, persistent_workers=workers > 0)
        while True:
            for x, y in loader:
                yield x.to(device).contiguous(memory_format=memory_format), y.to(device)
    images, labels = digits.to_device_tensors(dataset, device)
    gen = torch.Generator().manual_seed(0)
    while True:
        order = torch.randperm(len(images), generator=gen).to(device)
        for first in range(0, len(images) - batch_size + 1, batch_size):
            rows = order[first : first + batch_size]
            yield digits.batch_images(images, rows).contiguous(memory_format=memory_format), labels[rows]


def throughput(model_name: str, setting: str, device: str, dataset, steps: int, warmup: int = 2) -> float:
    """Images per second of ``steps`` training steps after ``warmup`` untimed ones."""
    name, width, batch_size = MODELS[model_name]
    config = training.make_config(name, num_hiddens=width, batch_size=batch_size, device=device)
    memory_format = torch.channels_last if "channels_last" in setting else torch.contiguous_format
    threads = torch.get_num_threads()
    if setting.startswith("threads-"):
        torch.set_num_threads(int(setting.split("-")[1]))
    try:
        torch.manual_seed(0)
        model = training.EXPERIMENTS[name].build_model(name, config).to(device, memory_format=memory_format).train()
        forward = torch.compile(model) if setting == "compile" else model
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        gen = torch.Generator(device=device).manual_seed(0)
        batches = _batches(setting, dataset, device, batch_size, memory_format)
        for step in range(warmup + steps):
            if step == warmup:
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                start = time.perf_counter()
            x, y = next(batches)
            loss = training.EXPERIMENTS[name].loss(name, forward, x, y, config, gen)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss.item()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return steps * batch_size / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)


def run_throughput(args) -> None:
    dataset = digits.load_mnist(offline=True)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    settings = ["tensor", "dataloader-0", "dataloader-2", "channels_last"]
    settings += [] if args.no_compile else ["compile"]
    settings += [f"threads-{n}" for n in args.threads]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, steps={args.steps}")
    print(f"{'device':6} {'model':7} {'setting':14} {'img/s':>9} {'ratio':>6}")
    for device in devices:
        for model_name in args.models:
            base = None
            for setting in settings:
                if device == "cuda" and setting.startswith("threads"):
                    continue
                try:
                    rate = throughput(model_name, setting, device, dataset, args.steps)
                except Exception as err:  # e.g. torch.compile without a working compiler
                    print(f"{device:6} {model_name:7} {setting:14} skipped: {type(err).__name__}: {str(err)[:80]}")
                    continue
                base = base or rate
                print(f"{device:6} {model_name:7} {setting:14} {rate:9.1f} {rate / base:6.2f}", flush=True)


def run_class_fm_quality(args) -> None:
    out = Path(args.out or tempfile.mkdtemp(prefix="class_fm_quality_"))
    train = [sys.executable, "-m", "course", "train", "class-fm", "--offline", "--preset", args.preset,
             "--out", str(out), "--no-progress"]
    start = time.perf_counter()
    subprocess.run(train, check=True)
    train_s = time.perf_counter() - start
    evaluate = [sys.executable, "-m", "course", "evaluate", str(out), "--per-digit", str(args.per_digit),
                "--json", str(out / "evaluation.json")]
    subprocess.run(evaluate, check=True)
    result = json.loads((out / "evaluation.json").read_text())
    ok = result["accuracy"] >= 0.9 and min(result["per_digit"]) >= 0.8
    print(f"preset {args.preset}: training wall time {train_s / 60:.1f} min (includes figure sampling); "
          f"accuracy {result['accuracy']:.1%}, lowest digit {min(result['per_digit']):.0%}; "
          f"target (≥90%, no digit <80%, <15 min): {'met' if ok and train_s < 900 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per row")
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 2], help="torch.set_num_threads rows")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile row")
    parser.add_argument("--class-fm-quality", action="store_true", help="train class-fm offline, then evaluate")
    parser.add_argument("--preset", default="offline-quality", help="preset for --class-fm-quality")
    parser.add_argument("--per-digit", type=int, default=20, help="samples per digit for the evaluation")
    parser.add_argument("--out", help="output folder of the quality run (default: a temporary folder)")
    args = parser.parse_args()
    run_class_fm_quality(args) if args.class_fm_quality else run_throughput(args)


if __name__ == "__main__":
    main()
