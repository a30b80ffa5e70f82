"""``course demo``: run every Part A stage on a stand-in model and save the figure of every deliverable.

The model is chosen by ``choose_stage1``: DeepFloyd IF on a GPU with the weights cached, otherwise the
project's digit model (it draws digits from prompts on a CPU in seconds), otherwise tiny random
stand-ins (mechanics only: their pictures are noise). Time convention: Part A, t = 0 clean.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class DemoConfig:
    out: Path = Path("out/demo")  # folder the PNG figures are written to
    model: str | None = None  # stage-1 model: hub id, local folder, "digit" or "tiny"; None = best available
    embeds: str | None = None  # prompt-embeddings file (safetensors) for a DeepFloyd model
    device: str | None = None  # "cpu" or "cuda"; None = cuda if available
    seed: int = 180  # one seed for every stage, as the course asks students to report
    fast: bool = False  # fewer SDEdit levels and samples, for quick checks
    upsample: bool = True  # also run stage 2 (a tiny random stand-in offline)


@dataclass
class Prompts:
    """The prompts each deliverable uses; photo prompts for DeepFloyd, digit prompts for the digit model."""

    part0: list[str]  # three prompts for the stage-1 pipeline samples
    photo: str  # the weak condition of 1.5-1.7 ("a high quality photo")
    text_edit: str  # the prompt of text-conditional image-to-image (1.7.3)
    anagrams: list[tuple[str, str]]  # (upright, transformed view)
    hybrids: list[tuple[str, str]]  # (low frequencies, high frequencies)
    extra: list[str] = field(default_factory=list)

    def all(self) -> list[str]:
        pairs = [p for pair in self.anagrams + self.hybrids for p in pair]
        return list(dict.fromkeys(["", *self.part0, self.photo, self.text_edit, *pairs, *self.extra]))


PHOTO_PROMPTS = Prompts(
    part0=["an oil painting of a snowy mountain village", "a man wearing a hat", "a rocket ship"],
    photo="a high quality photo",
    text_edit="a rocket ship",
    anagrams=[("an oil painting of an old man", "an oil painting of people around a campfire")],
    hybrids=[("a lithograph of a skull", "a lithograph of waterfalls")],
)


def _digit(n: int) -> str:
    words = "zero one two three four five six seven eight nine".split()
    return f"a handwritten digit {words[n]}"


DIGIT_PROMPTS = Prompts(
    part0=[_digit(3), _digit(5), _digit(8)],
    photo=_digit(2),
    text_edit=_digit(4),
    anagrams=[(_digit(6), _digit(9))],
    hybrids=[(_digit(1), _digit(7))],
)


def _load_models(config: DemoConfig):
    """Returns (stage1, stage2 or None, embeds dict, prompts, description)."""
    import torch

    from reference import loading, tiny

    device = torch.device(config.device) if config.device else loading.default_device()
    model = config.model
    if model is None:
        model, reason = loading.choose_stage1(device=device)
        if model is None:
            model = "tiny"
            reason = reason + " Falling back to tiny random stand-ins (their pictures are noise)."
    else:
        reason = f"Model {model!r} chosen with --model."
    if model == "digit":
        model = loading.DIGIT_MODEL
    stage2 = None
    if model == "tiny":
        stage1 = tiny.tiny_stage1_pipeline().to(device)
        prompts = PHOTO_PROMPTS
        embeds = {p: stage1.encode_prompt(p, do_classifier_free_guidance=False)[0] for p in prompts.all()}
        description = "tiny random stand-in (mechanics only)"
    else:
        stage1 = loading.load_stage1(model, device=device)
        is_digit = Path(str(model)).resolve() == Path(loading.DIGIT_MODEL).resolve()
        prompts = DIGIT_PROMPTS if is_digit else PHOTO_PROMPTS
        embeds_path = config.embeds or (loading.DIGIT_EMBEDS if is_digit else None)
        if embeds_path is None:
            raise ValueError(
                "A DeepFloyd model needs prompt embeddings: pass --embeds FILE (made with `course embed`)."
            )
        embeds = loading.load_prompt_embeds(embeds_path, device=device, dtype=stage1.unet.dtype)
        description = "the project's digit model" if is_digit else str(model)
    if config.upsample:
        if model == "tiny" or description.startswith("the project's digit"):
            stage2 = tiny.tiny_stage2_pipeline().to(device)
        else:
            stage2 = loading.load_stage2(device=device)
    return stage1, stage2, embeds, prompts, f"{description}. {reason}"


def _test_images(prompts: Prompts, size: int, generator):
    """(name, image) pairs: the course's test image, own images, a web image and two hand-drawn ones."""
    from reference.images import load_image

    if prompts is DIGIT_PROMPTS:
        from reference.data import load_mnist

        held_out = load_mnist(train=False, offline=True)
        digit = {}
        for i in range(len(held_out)):  # the first held-out digit of each class
            x, label = held_out[i]
            digit.setdefault(int(label), x)
        as_rgb = lambda x: load_image((x[0].numpy() * 255).astype("uint8"), size=size)  # noqa: E731
        return {
            "test": as_rgb(digit[7]),
            "own": [as_rgb(digit[2]), as_rgb(digit[0])],
            "web": as_rgb(digit[4]),
            "drawn": [load_image(img, size=size) for img in _hand_drawn_digits()],
        }
    return {
        "test": load_image("skimage:rocket", size=size),  # stands in for the Campanile: a tall tower
        "own": [load_image("skimage:astronaut", size=size), load_image("skimage:chelsea", size=size)],
        "web": load_image("skimage:coffee", size=size),  # offline stand-in for a web image
        "drawn": [load_image(img, size=size) for img in _hand_drawn_sketches()],
    }


def _hand_drawn_digits():
    """Two digits drawn with strokes, like the notebook's drawing canvas (white on black, MNIST-style)."""
    from PIL import Image, ImageDraw

    seven = Image.new("RGB", (128, 128), "black")
    d = ImageDraw.Draw(seven)
    d.line([(30, 28), (98, 28), (56, 108)], fill="white", width=14)
    one = Image.new("RGB", (128, 128), "black")
    d = ImageDraw.Draw(one)
    d.line([(52, 40), (68, 22), (68, 108)], fill="white", width=14)
    return [seven, one]


def _hand_drawn_sketches():
    """Two simple sketches (a house and a sun over hills), as a student would draw them on the canvas."""
    from PIL import Image, ImageDraw

    house = Image.new("RGB", (256, 256), "white")
    d = ImageDraw.Draw(house)
    d.rectangle([60, 120, 196, 220], outline="black", width=6, fill=(200, 60, 40))
    d.polygon([(50, 125), (128, 50), (206, 125)], outline="black", fill=(90, 60, 40))
    d.rectangle([110, 160, 146, 220], fill=(60, 40, 20))
    sun = Image.new("RGB", (256, 256), (120, 180, 255))
    d = ImageDraw.Draw(sun)
    d.ellipse([150, 30, 220, 100], fill=(255, 220, 0))
    d.pieslice([-60, 150, 200, 400], 180, 360, fill=(40, 160, 60))
    d.pieslice([100, 170, 330, 400], 180, 360, fill=(30, 130, 50))
    return [house, sun]


def run_demo(config: DemoConfig) -> list[Path]:
    """Run every Part A stage and write one PNG per deliverable into ``config.out``; returns the paths."""
    import torch
    from tqdm.auto import tqdm

    from reference import denoise, editing, illusions, images, upsample
    from reference.loading import prompt_embeds

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    stage1, stage2, embeds, prompts, description = _load_models(config)
    print(f"course demo: stage 1 = {description}")
    unet, scheduler = stage1.unet, stage1.scheduler
    device, dtype = unet.device, unet.dtype
    size = unet.config.sample_size
    g = torch.Generator(device).manual_seed(config.seed)
    e = lambda p: prompt_embeds(embeds, p).to(device, dtype)  # noqa: E731
    uncond = e("")
    alphas_cumprod = scheduler.alphas_cumprod
    ts = denoise.strided_timesteps()
    denoise.set_strided_timesteps(scheduler, ts)
    pics = _test_images(prompts, size, g)
    x0 = pics["test"].to(device, dtype)
    i_starts = (1, 5, 10, 20) if config.fast else editing.SDEDIT_I_STARTS
    n_samples = 2 if config.fast else 5
    written: list[Path] = []

    def save(name, ims, titles, **kw):
        path = out / f"{name}.png"
        images.save_grid([im.float().cpu() for im in ims], path, titles=titles, **kw)
        written.append(path)

    def cfg(xt, i_start, prompt):
        return denoise.iterative_denoise_cfg(unet, scheduler, xt, i_start, e(prompt), uncond, ts, scale=7.0, generator=g)

    def part0():
        for steps in (5, 20):
            pe = torch.cat([e(p) for p in prompts.part0])
            result = stage1(prompt_embeds=pe, negative_prompt_embeds=uncond.expand_as(pe), num_inference_steps=steps,
                            output_type="pt", generator=g).images
            save(f"0_samples_{steps}_steps", list(result), prompts.part0, suptitle=f"stage 1, {steps} steps")
        denoise.set_strided_timesteps(scheduler, ts)  # the pipeline reset the scheduler's timesteps
        if stage2 is not None:
            up = upsample.upsample(stage2, result.to(device, dtype), pe, uncond.expand_as(pe), num_inference_steps=5,
                                   generator=torch.Generator(device).manual_seed(config.seed))
            save("0_stage2_upsampled", list(up), prompts.part0, suptitle="stage 2 (tiny random stand-in offline)")

    def forward_blur_onestep():
        noisy, blurred, onestep = [], [], []
        for t in (250, 500, 750):
            xt = denoise.forward(x0, t, alphas_cumprod, generator=g)
            noisy.append(xt)
            blurred.append(denoise.blur_denoise(xt, kernel_size=7, sigma=1.5))
            onestep.append(denoise.one_step_denoise(unet, xt, t, e(prompts.photo), alphas_cumprod))
        save("1.1_forward", [x0, *noisy], ["original", "t=250", "t=500", "t=750"])
        save("1.2_blur", [*noisy, *blurred], [f"noisy t={t}" for t in (250, 500, 750)]
             + [f"blurred t={t}" for t in (250, 500, 750)], ncols=3)
        save("1.3_one_step", [x for t in range(3) for x in (x0, noisy[t], onestep[t])],
             [f"{k} t={t}" for t in (250, 500, 750) for k in ("original", "noisy", "one-step")], ncols=3)

    def iterative():
        i_start = 10
        xt = denoise.forward(x0, ts[i_start], alphas_cumprod, generator=g)
        final, frames = denoise.iterative_denoise(unet, scheduler, xt, i_start, e(prompts.photo), ts, generator=g,
                                                  return_intermediates=True)
        every5 = [(t, im) for k, (t, im) in enumerate(frames) if k % 5 == 0]
        save("1.4_iterative_every_5th", [im for _, im in every5], [f"t={t}" for t, _ in every5])
        one = denoise.one_step_denoise(unet, xt, ts[i_start], e(prompts.photo), alphas_cumprod)
        blur = denoise.blur_denoise(xt, kernel_size=5, sigma=2.0)
        save("1.4_iterative_comparison", [x0, final, one, blur], ["original", "iterative", "one-step", "blurred"])

    def sampling():
        xt = torch.randn((n_samples, 3, size, size), generator=g, device=device, dtype=dtype)
        plain = denoise.iterative_denoise(unet, scheduler, xt, 0, e(prompts.photo), ts, generator=g)
        save("1.5_samples", list(plain), [f"sample {k + 1}" for k in range(n_samples)], suptitle=prompts.photo)
        guided = cfg(xt, 0, prompts.photo)
        save("1.6_cfg_samples", list(guided), [f"sample {k + 1}" for k in range(n_samples)],
             suptitle=f"{prompts.photo!r}, CFG scale 7")

    def sdedit_figure(name, image, prompt):
        results = [editing.sdedit(unet, scheduler, image.to(device, dtype), i, e(prompt), uncond, ts, scale=7.0,
                                  generator=g) for i in i_starts]
        save(name, [*results, image], [f"i_start={i}" for i in i_starts] + ["original"], suptitle=prompt or None)

    def sdedits():
        sdedit_figure("1.7_sdedit_test_image", x0, prompts.photo)
        for k, im in enumerate(pics["own"]):
            sdedit_figure(f"1.7_sdedit_own_{k + 1}", im, prompts.photo)
        sdedit_figure("1.7.1_sdedit_web", pics["web"], prompts.photo)
        for k, im in enumerate(pics["drawn"]):
            sdedit_figure(f"1.7.1_sdedit_hand_drawn_{k + 1}", im, prompts.photo)

    def inpainting():
        h = size
        masks = [images.rect_mask((1, 3, h, h), 0, h * 5 // 16, h * 3 // 8, h * 21 // 32),  # top of the tower
                 images.rect_mask((1, 3, h, h), 0, h // 2, 0, h)]  # the top half
        for k, (im, mask) in enumerate([(x0, masks[0]), (pics["own"][0], masks[1])]):
            im = im.to(device, dtype)
            result = editing.inpaint(unet, scheduler, im, mask.to(device, dtype), e(prompts.photo), uncond, ts,
                                     scale=7.0, generator=g)
            save(f"1.7.2_inpaint_{k + 1}", [im, (mask * 2 - 1).expand_as(im), im * (1 - mask), result],
                 ["original", "mask", "kept", "inpainted"])

    def text_edit():
        sdedit_figure("1.7.3_text_conditional_test_image", x0, prompts.text_edit)
        sdedit_figure("1.7.3_text_conditional_own", pics["own"][0], prompts.text_edit)

    def anagrams():
        for view_name in ("flip", "rot90", "negate"):
            view, inverse = illusions.VIEWS[view_name]
            p1, p2 = prompts.anagrams[0]
            xt = torch.randn((1, 3, size, size), generator=g, device=device, dtype=dtype)
            result = illusions.visual_anagram(unet, scheduler, xt, 0, e(p1), e(p2), uncond, ts,
                                              view=illusions.VIEWS[view_name], scale=7.0, generator=g)
            save(f"1.8_anagram_{view_name}", [result, view(result)], [p1, f"{view_name}: {p2}"])

    def hybrids():
        low, high = prompts.hybrids[0]
        xt = torch.randn((1, 3, size, size), generator=g, device=device, dtype=dtype)
        result = illusions.make_hybrids(unet, scheduler, xt, 0, e(low), e(high), uncond, ts, scale=7.0, generator=g)
        save("1.9_hybrid", [result, illusions.lowpass(result)], [f"close: {high}", f"blurred: {low}"])

    stages = [("0 stage-1 samples and stage-2 upsampling", part0), ("1.1-1.3 forward, blur, one-step",
              forward_blur_onestep), ("1.4 iterative denoising", iterative), ("1.5-1.6 sampling and CFG", sampling),
              ("1.7-1.7.1 SDEdit", sdedits), ("1.7.2 inpainting", inpainting), ("1.7.3 text-conditional", text_edit),
              ("1.8 visual anagrams", anagrams), ("1.9 hybrid images", hybrids)]
    start = time.perf_counter()
    with torch.no_grad():
        for name, stage in (bar := tqdm(stages, desc="Part A demo", unit="stage")):
            bar.set_postfix_str(name)
            stage()
    print(f"course demo: wrote {len(written)} figures to {out} in {time.perf_counter() - start:.0f} s")
    return written
