"""Judging the digit model while it trains: per-digit accuracy of CFG samples, a training log, the best weights.

Time convention (DDPM, as Part A): t = 0 is clean, t = 999 is pure noise.

``sample_accuracy`` is the first check of ``bench/digit_model_quality.py`` (and its ``--quick`` setting):
for each digit prompt, ``n`` samples with CFG γ = 7 over the course's 34 strided timesteps through the
reference loop, read by the Part B classifier. It also counts "blobs" (samples whose mean brightness is
above mid-grey: the saturated failure of an over-guided early step), the failure that limits the model.

``TrainingJudge`` is what ``course train-mini --judge-every N`` calls every N steps: it appends a row to
``OUT/training_log.csv`` (step, loss, accuracy per digit, minimum, mean, blob fraction) and saves the
weights as a pipeline folder ``OUT/best/`` whenever their minimum per-digit accuracy beats every earlier
row's. A warm start's first row (step 0) is the starting weights, so "best" then means better than them.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch

GUIDANCE = 7.0  # CFG scale of every judged sample (the course's γ)
LOG_FIELDS = ["step", "loss", *[f"acc_{d}" for d in range(10)], "min_acc", "mean_acc", "blob_frac"]


def sample_accuracy(unet, scheduler, embeds: dict, classifier, n: int = 20, seed: int = 0) -> dict:
    """``{"acc": (10,) fraction of samples read as their prompt's digit, "blob": fraction of blobs, "images"}``.

    unet, scheduler: a digit-model pipeline's parts; embeds: ``{prompt: (1, 77, W)}`` with the ten digit
    prompts and ""; one generator seeded with ``seed`` draws every sample, digit by digit (so two models
    judged with the same seed start from the same noise). images: the first 10 samples per digit.
    """
    from fwd_kit.digit_model import DIGIT_PROMPTS
    from reference.classifier import classify, to_mnist
    from reference.denoise import sample, strided_timesteps

    gen, ts = torch.Generator("cpu").manual_seed(seed), strided_timesteps()
    acc, blobs, images = torch.zeros(10), 0, []
    with torch.no_grad():
        for digit, prompt in enumerate(DIGIT_PROMPTS):
            x = sample(unet, scheduler, embeds[prompt], embeds[""], ts, num_samples=n, scale=GUIDANCE, generator=gen)
            acc[digit] = (classify(classifier, to_mnist(x)) == digit).float().mean()
            blobs += int((x.float().mean(dim=(1, 2, 3)) > 0).sum())
            images.append(x[:10])
    return {"acc": acc, "blob": blobs / (10 * n), "images": images}


class TrainingJudge:
    """Called as ``judge(step, unet, loss)``: log a row, keep the best weights in ``out/best`` (see module doc)."""

    def __init__(self, out: Path, embeds: dict, n: int = 20, seed: int = 0, log=print):
        from reference.classifier import load_classifier

        self.out, self.embeds, self.n, self.seed, self.log = Path(out), embeds, n, seed, log
        self.classifier = load_classifier()
        self.path = self.out / "training_log.csv"
        self.rows = self.read_log(self.path)

    @staticmethod
    def read_log(path: Path) -> list[dict]:
        """The rows of a training log (floats, step as int); [] where there is none yet."""
        if not path.exists():
            return []
        with open(path, newline="") as f:
            return [{k: (int(v) if k == "step" else float(v) if v else None) for k, v in row.items()}
                    for row in csv.DictReader(f)]

    @property
    def best(self) -> float:
        return max((r["min_acc"] for r in self.rows), default=-1.0)

    def __call__(self, step: int, unet, loss: float | None) -> dict:
        from fwd_kit.digit_model import digit_pipeline

        scheduler = digit_pipeline(None).scheduler
        judged = sample_accuracy(unet, scheduler, self.embeds, self.classifier, self.n, self.seed)
        acc = judged["acc"]
        row = {"step": step, "loss": loss, **{f"acc_{d}": round(acc[d].item(), 4) for d in range(10)},
               "min_acc": round(acc.min().item(), 4), "mean_acc": round(acc.mean().item(), 4),
               "blob_frac": round(judged["blob"], 4)}
        improved = step > 0 and row["min_acc"] > self.best
        self.rows.append(row)
        self.out.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=LOG_FIELDS)
            if new:
                writer.writeheader()
            writer.writerow(row)
        if improved:
            self.save_best(unet, step)
        self.log(f"judged step {step}: min {row['min_acc']:.2f} mean {row['mean_acc']:.2f} blobs "
                 f"{row['blob_frac']:.2f}" + ("  (new best, saved to best/)" if improved else ""))
        return row

    def save_best(self, unet, step: int) -> Path:
        """The judged weights as a pipeline folder ``out/best`` (replaced through a rename), with the embeds."""
        import shutil

        from safetensors.torch import save_file

        from fwd_kit.digit_model import digit_pipeline

        tmp, best = self.out / "best.tmp", self.out / "best"
        shutil.rmtree(tmp, ignore_errors=True)
        digit_pipeline(unet.cpu()).save_pretrained(tmp, safe_serialization=True)
        save_file({p: e.contiguous() for p, e in self.embeds.items()}, tmp / "prompt_embeds.safetensors")
        (tmp / "STEP").write_text(f"{step}\n")
        for path in tmp.rglob("*"):
            if path.is_file():
                path.chmod(0o644)
        shutil.rmtree(best, ignore_errors=True)
        tmp.rename(best)
        return best


def plot_training_log(log_csv: Path, out_png: Path) -> Path:
    """Draw ``training_log.csv`` (as :class:`TrainingJudge` writes it): per-digit accuracy (minimum and mean)
    and the blob fraction against the step, the training loss on a second panel. Returns ``out_png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = TrainingJudge.read_log(Path(log_csv))
    steps = [int(r["step"]) for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 5), sharex=True)
    for field, label in (("min_acc", "min over digits"), ("mean_acc", "mean over digits"),
                         ("blob_frac", "blobs (saturated samples)")):
        top.plot(steps, [float(r[field]) for r in rows], marker="o", label=label)
    top.set_ylim(0, 1.05)
    top.set_ylabel("fraction of CFG samples")
    top.legend(loc="center right")
    top.set_title("Digit model while training\n(CFG γ = 7, 34 strided steps, n = 20 samples per digit)", fontsize=10)
    lossy = [(s, float(r["loss"])) for s, r in zip(steps, rows) if r.get("loss") not in (None, "")]
    bottom.plot([s for s, _ in lossy], [v for _, v in lossy], marker="o", color="black")
    bottom.set_ylabel("training loss")
    bottom.set_xlabel("step")
    fig.tight_layout()
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=80)
    plt.close(fig)
    return out_png
