"""Does the shipped digit model load like DeepFloyd stage 1, and does it really draw the digit it is asked for?"""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from fwd_kit.digit_model import DIGIT_PROMPTS, DigitModelConfig, build_digit_unet, hybrid_loss
from fwd_kit.loading import DIGIT_EMBEDS, DIGIT_MODEL

needs_model = pytest.mark.skipif(not (DIGIT_MODEL / "model_index.json").exists(),
                                reason=f"the digit model is not installed at {DIGIT_MODEL}")


@pytest.fixture(scope="module")
def digit_pipe():
    from diffusers import DiffusionPipeline

    return DiffusionPipeline.from_pretrained(DIGIT_MODEL)


@pytest.fixture(scope="module")
def digit_embeds():
    from fwd_kit.loading import load_prompt_embeds

    return load_prompt_embeds(DIGIT_EMBEDS)


def _classifier_or_skip():
    """The Part B classifier, if its module and weights are there (training one here would be slow)."""
    if importlib.util.find_spec("reference.classifier") is None:
        pytest.skip("reference.classifier (the Part B judge) is not written yet")
    from reference import classifier

    if not (classifier.WEIGHTS_PATH.exists() or classifier.CACHE_PATH.exists()):
        pytest.skip(f"no Part B classifier weights at {classifier.WEIGHTS_PATH} or {classifier.CACHE_PATH}")
    return classifier


@needs_model
def test_loads_as_an_if_stage1_pipeline(digit_pipe):
    from diffusers import DDPMScheduler, IFPipeline

    assert isinstance(digit_pipe, IFPipeline)
    assert isinstance(digit_pipe.scheduler, DDPMScheduler)
    assert digit_pipe.text_encoder is None and digit_pipe.safety_checker is None and digit_pipe.watermarker is None
    sched = digit_pipe.scheduler.config
    assert (sched.num_train_timesteps, sched.beta_schedule, sched.variance_type, sched.prediction_type) == (
        1000, "squaredcos_cap_v2", "learned_range", "epsilon")
    assert sched.thresholding and sched.sample_max_value == 1.5


@needs_model
def test_unet_outputs_eps_and_variance_at_its_size(digit_pipe, digit_embeds):
    unet = digit_pipe.unet
    size = unet.config.sample_size
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = unet(x, 500, encoder_hidden_states=torch.cat([digit_embeds[""], digit_embeds[DIGIT_PROMPTS[3]]])).sample
    assert out.shape == (2, 6, size, size) and torch.isfinite(out).all()
    assert unet.config.down_block_types[0] == "ResnetDownsampleBlock2D"
    assert unet.config.encoder_hid_dim_type == "text_proj" and unet.config.addition_embed_type == "text"


@needs_model
def test_weights_fit_the_budget():
    total = sum(p.stat().st_size for p in DIGIT_MODEL.rglob("*") if p.is_file())
    assert total <= 5 * 1024 * 1024, f"the digit model takes {total / 2**20:.2f} MiB, over the 5 MiB budget"
    assert not list(DIGIT_MODEL.rglob("checkpoint*")), "a training checkpoint was left in the model directory"


@needs_model
def test_embeddings_hold_the_eleven_prompts_at_the_unet_width(digit_pipe, digit_embeds):
    assert set(digit_embeds) == set(DIGIT_PROMPTS) | {""}
    for prompt, e in digit_embeds.items():
        assert e.shape == (1, 77, digit_pipe.unet.config.encoder_hid_dim), prompt
    # the ten digit prompts must be told apart: each is nearer to itself than to any other by a margin
    flat = torch.cat([digit_embeds[p] for p in DIGIT_PROMPTS]).flatten(1)
    distances = torch.cdist(flat, flat) + torch.eye(10) * 1e9
    assert distances.min() > 0.1 * flat.norm(dim=1).mean()


@needs_model
def test_embeddings_are_remade_by_the_tiny_t5():
    from fwd_kit.digit_model import make_prompt_embeds
    from fwd_kit.loading import load_prompt_embeds

    shipped, remade = load_prompt_embeds(DIGIT_EMBEDS), make_prompt_embeds(DigitModelConfig().text_seed)
    for prompt in shipped:
        torch.testing.assert_close(remade[prompt], shipped[prompt])


def test_hybrid_loss_matches_the_scheduler_variance_and_an_analytic_kl():
    """At frac = 0 (v = −1) p's variance is β̃_t, so with ε̂ = ε the KL is 0 and the loss is 0."""
    from fwd_kit.tiny import stage1_scheduler

    abar = stage1_scheduler().alphas_cumprod
    gen = torch.Generator().manual_seed(0)
    x0, eps = torch.rand(3, 3, 8, 8, generator=gen) * 2 - 1, torch.randn(3, 3, 8, 8, generator=gen)
    t = torch.tensor([5, 400, 999])
    a = abar[t].view(-1, 1, 1, 1)
    xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
    perfect = torch.cat([eps, -torch.ones_like(eps)], dim=1)
    assert hybrid_loss(perfect, x0, xt, eps, t, abar).abs().max() < 1e-4
    # frac = 1 (v = +1): log-variance log β_t; KL of two Gaussians with equal means is analytic
    upper = torch.cat([eps, torch.ones_like(eps)], dim=1)
    beta = 1 - abar[t] / abar[t - 1]
    beta_tilde = (1 - abar[t - 1]) / (1 - abar[t]) * beta
    r = beta_tilde / beta
    expected = 0.5 * (r - 1 - torch.log(r)) / math.log(2)
    torch.testing.assert_close(hybrid_loss(upper, x0, xt, eps, t, abar), expected, rtol=1e-3, atol=1e-6)


@needs_model
def test_config_builds_the_shipped_architecture(digit_pipe):
    unet = build_digit_unet(DigitModelConfig(), text_width=digit_pipe.unet.config.encoder_hid_dim)
    assert sum(p.numel() for p in unet.parameters()) == sum(p.numel() for p in digit_pipe.unet.parameters())
    assert list(unet.config.block_out_channels) == list(digit_pipe.unet.config.block_out_channels)
    assert list(unet.config.down_block_types) == list(digit_pipe.unet.config.down_block_types)
    assert list(unet.config.up_block_types) == list(digit_pipe.unet.config.up_block_types)


def test_learning_rate_warms_up_then_decays_to_zero_on_a_cosine():
    from dataclasses import replace

    from fwd_kit.digit_model import learning_rate

    config = replace(DigitModelConfig(), lr=1e-3, warmup_steps=10, steps=110, cosine_decay=True)
    assert learning_rate(config, 0) == pytest.approx(1e-4) and learning_rate(config, 9) == pytest.approx(1e-3)
    assert learning_rate(config, 60) == pytest.approx(5e-4)  # half-way through the cosine
    assert learning_rate(config, 110) == pytest.approx(0.0, abs=1e-12)
    assert learning_rate(replace(config, cosine_decay=False), 100) == 1e-3


@needs_model
def test_one_cfg_sample_of_seven_is_classified_as_seven(digit_pipe, digit_embeds):
    classifier = _classifier_or_skip()
    from reference.denoise import sample, strided_timesteps

    x = sample(digit_pipe.unet, digit_pipe.scheduler, digit_embeds[DIGIT_PROMPTS[7]], digit_embeds[""],
               strided_timesteps(), num_samples=1, scale=7.0, generator=torch.Generator().manual_seed(0))
    assert x.shape == (1, 3, 32, 32)
    digit = classifier.classify(classifier.load_classifier(), classifier.to_mnist(x.clamp(-1, 1)))
    assert digit.item() == 7


@pytest.mark.slow
@needs_model
def test_quality_table_meets_the_issue_targets(digit_pipe, digit_embeds):
    classifier = _classifier_or_skip()
    import importlib.util as iu
    from pathlib import Path

    spec = iu.spec_from_file_location("digit_quality", Path(__file__).parents[1] / "bench" / "digit_model_quality.py")
    bench = iu.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = bench.quality(digit_pipe, digit_embeds, classifier.load_classifier(), n=20, seed=0, log=lambda _: None)
    results.pop("_images")
    for d in range(10):
        assert results[f"sample {d}"] >= 0.9, f"digit {d}: {results[f'sample {d}']:.2f} of samples classified right"
    assert results["sdedit all drawn digits"] >= 0.8
    assert results["inpaint bottom half, digit prompt"] >= 0.8


def test_training_is_seeded_and_resumes_bit_exactly(tmp_path):
    """Two steps in one go = one step, stop, resume, one more step (same config and seed)."""
    from dataclasses import replace

    from safetensors.torch import load_file

    from fwd_kit.digit_model import train_digit_model

    config = replace(DigitModelConfig(), batch_size=4, steps=2, checkpoint_every=1, warmup_steps=1)
    train_digit_model(config, tmp_path / "straight", log=lambda _: None)
    # a time limit of 0 minutes stops after the first step and keeps the checkpoint
    train_digit_model(config, tmp_path / "split", max_minutes=0, log=lambda _: None)
    assert (tmp_path / "split" / "checkpoint.pt").exists() and not (tmp_path / "split" / "model_index.json").exists()
    train_digit_model(config, tmp_path / "split", resume=True, log=lambda _: None)
    weights = "unet/diffusion_pytorch_model.safetensors"
    a, b = load_file(str(tmp_path / "straight" / weights)), load_file(str(tmp_path / "split" / weights))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_training_log_figure_is_drawn_from_the_log(tmp_path):
    """A warm start's first row has no loss: the figure still draws every row (accuracy, blobs, loss)."""
    from course.digit_quality import LOG_FIELDS, plot_training_log

    log = tmp_path / "training_log.csv"
    rows = [",".join(LOG_FIELDS)]
    for step, loss, acc, blobs in ((0, "", 0.5, 0.3), (1000, "0.02", 0.9, 0.1)):
        rows.append(",".join([str(step), loss, *[str(acc)] * 10, str(acc), str(acc), str(blobs)]))
    log.write_text("\n".join(rows) + "\n")
    out = plot_training_log(log, tmp_path / "log.png")
    from PIL import Image

    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (480, 400)


def test_the_judge_keeps_the_best_weights_by_accuracy_then_empty_prompt_inpainting(tmp_path, monkeypatch):
    """Once every digit reads right (the minimum saturates at 1.00), a checkpoint is kept only where the
    empty-prompt inpainting beats every earlier row; a lower minimum is never kept for its inpainting."""
    import course.digit_quality as dq

    judged = iter([(1.0, 0.60), (1.0, 0.58), (0.95, 0.80), (1.0, 0.70), (1.0, 0.70)])  # (min acc, inpainting)
    current = {}

    def fake_samples(*args, **kwargs):
        current["min"], current["inpaint"] = next(judged)
        return {"acc": torch.full((10,), current["min"]), "blob": 0.0, "images": []}

    monkeypatch.setattr(dq, "sample_accuracy", fake_samples)
    monkeypatch.setattr(dq, "inpaint_accuracy", lambda *args, **kwargs: current["inpaint"])
    kept = []
    judge = dq.TrainingJudge.__new__(dq.TrainingJudge)
    judge.out, judge.embeds, judge.n, judge.seed, judge.log = tmp_path, {}, 1, 0, lambda _: None
    judge.path, judge.rows, judge.classifier = tmp_path / "training_log.csv", [], None
    judge.save_best = lambda unet, step: kept.append(step)
    for step in (0, 1000, 2000, 3000, 4000):
        judge(step, None, None if step == 0 else 0.02)
    assert kept == [3000]
    rows = dq.TrainingJudge.read_log(judge.path)
    assert [r["inpaint_empty"] for r in rows] == [0.6, 0.58, 0.8, 0.7, 0.7]
    # a log written before the column existed still reads, and ranks below any row that has it
    old = {"min_acc": 1.0, "inpaint_empty": None}
    assert dq.TrainingJudge.rank(old) < dq.TrainingJudge.rank({"min_acc": 1.0, "inpaint_empty": 0.0})
