"""The Part A notebook template: "The Power of Diffusion Models" with DeepFloyd IF (or the digit model).

``CELLS`` lists the notebook's cells in order (``course.notebooks.cells``). Students write the stages of
``reference.denoise``, ``reference.editing`` and ``reference.illusions``: each ``Solution`` holds one of
those functions (lifted with ``inspect``) and is followed by its public ``Check``. Helpers (UNet call,
variance, plotting, loading) are imported, never written. The same notebook runs DeepFloyd IF on a
GPU and the project's digit model on a CPU; ``FAST`` (environment variable ``FWD_FAST``) trims the
figures so that the whole notebook runs on a CPU in about two minutes.

Time convention (Part A, DDPM): t = 0 is clean, t = 999 is pure noise.
"""

from __future__ import annotations

from textwrap import dedent

from course.notebooks.cells import Check, Code, Markdown, Reflection, Solution
from reference import denoise, editing, illusions


def md(text: str) -> Markdown:
    return Markdown(dedent(text).strip())


def code(source: str, tags: tuple[str, ...] = ()) -> Code:
    return Code(dedent(source).strip(), tags)


def graded(obj, points: int) -> list:
    """A student function and its public check: ``Solution(obj)`` then ``Check("test_<name>", ...)``."""
    name = obj.__name__
    source = f"from autograder.public import check_{name}\ncheck_{name}({name})"
    return [Solution(obj), Check(f"test_{name}", points, source)]


def reflect(grade_id: str, points: int, question: str) -> Reflection:
    """A written answer graded by hand; the question cell says how many points it is worth."""
    plural = "s" if points > 1 else ""
    return Reflection(grade_id, points, f"**Written answer ({points} point{plural}).** {question}")


SETUP = [
    md("""
    # Part A — The Power of Diffusion Models

    You will write the sampling loops of a pretrained text-to-image diffusion model yourself: the forward
    (noising) process, one-step and iterative denoising, classifier-free guidance, image-to-image editing,
    inpainting, visual anagrams and hybrid images. On a GPU the model is **DeepFloyd IF** (stage 1 makes
    64×64 images, stage 2 upsamples them to 256×256). On a CPU the notebook uses the course's **digit
    model**: a small model with exactly DeepFloyd's interface that draws 32×32 MNIST digits from prompts
    such as "a handwritten digit seven". Your code must work with both: never hard-code a device, a dtype,
    an image size or the text width — read them from the model.

    **Time convention.** t = 0 is a clean image and t = 999 is pure noise. Images are float tensors of
    shape (B, 3, H, W) with values in [-1, 1].

    Each function you write has its own cell: keep its signature and docstring, replace
    `raise NotImplementedError()` with your code, and run the check cell below it, which tells you whether
    it behaves as expected (the graders run more checks). The figure cells then call *your* functions.
    Written answers go in the answer cells marked *YOUR ANSWER HERE*.
    """),
    code('''
    # Parameters: change them here, or set FWD_FAST=1 in the environment for a quick run.
    import os

    import torch

    MODEL = "DeepFloyd/IF-I-XL-v1.0" if torch.cuda.is_available() else "digit"  # or IF-I-L-v1.0 / IF-I-M-v1.0
    DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
    FAST = os.environ.get("FWD_FAST", "0").strip().lower() in ("1", "true", "yes")  # fewer levels and samples
    SEED = 180  # report your seed and use it everywhere
    EMBEDS_FILE = "prompt_embeds.safetensors"  # DeepFloyd only: your prompt embeddings (made below if missing)
    ''', tags=("parameters",)),
    code('''
    # Colab setup: install the course package and, for DeepFloyd, log in to Hugging Face. Elsewhere it does
    # nothing: install the package yourself, and the loaders read HF_TOKEN or your stored login.
    import importlib.util
    import subprocess
    import sys

    IN_COLAB = "google.colab" in sys.modules
    # The course package's pip source, as your instructors give it, e.g. a wheel you uploaded or
    # "fun-with-diffusion[gpu] @ git+https://github.com/ORG/fun-with-diffusion".
    PACKAGE_SOURCE = os.environ.get("FWD_PACKAGE_SOURCE", "")
    if IN_COLAB and importlib.util.find_spec("reference") is None:
        if not PACKAGE_SOURCE:
            raise ValueError("The course package is not installed: set PACKAGE_SOURCE to its pip source "
                             "(a wheel file or a git URL from your instructors) and run this cell again.")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", PACKAGE_SOURCE], check=True)
    if IN_COLAB and MODEL.startswith("DeepFloyd/"):
        # Accept the licence on https://huggingface.co/DeepFloyd/IF-I-XL-v1.0 first (it covers every IF model).
        from google.colab import userdata  # Colab's "Secrets" panel (key icon): add a read token as HF_TOKEN
        from huggingface_hub import get_token, login

        try:
            token = os.environ.get("HF_TOKEN") or userdata.get("HF_TOKEN")
        except Exception:  # no such secret, or the notebook may not read it
            token = None
        if token:
            login(token=token)
        elif get_token() is None:
            login()  # asks for a read token
    '''),
    code('''
    # Which stage-1 model runs, and why.
    from reference.loading import DIGIT_MODEL, choose_stage1

    IS_DIGIT = MODEL == "digit"
    model_id, why = choose_stage1(DIGIT_MODEL if IS_DIGIT else MODEL, device=DEVICE)
    if IS_DIGIT:
        why = f"MODEL = 'digit' ({'the default without a CUDA GPU' if DEVICE == 'cpu' else 'your choice'})"
    elif DEVICE == "cpu":
        print("Warning: DeepFloyd IF on a CPU is extremely slow; set MODEL = 'digit' for a CPU run.")
    print(f"Stage 1: {'the digit model' if IS_DIGIT else model_id} on {DEVICE} — {why}")
    '''),
    md("""
    ## Prompts

    DeepFloyd reads prompts through a T5 text encoder that alone needs about 10 GB of GPU memory, so the
    prompts are encoded once and the notebook only loads their **embeddings**: a dict
    `{prompt: tensor (1, 77, W)}` with W = 4096 for T5 (32 for the digit model). The empty prompt `""` is
    always included: it is the unconditional branch of classifier-free guidance.

    Invent your own prompts: edit the lists below (keep the pairs for the anagrams and hybrids). With
    DeepFloyd the next cell encodes every prompt once on the GPU, before the UNet is loaded, and saves the
    embeddings to `EMBEDS_FILE`; it encodes again when you add prompts. (With the course package installed
    you can also run `course embed prompts.txt --out prompt_embeds.safetensors`, one prompt per line.) The
    digit model knows only "a handwritten digit zero" … "a handwritten digit nine" and `""`.
    """),
    code('''
    import gc
    from pathlib import Path

    from reference.digit_model import DIGIT_PROMPTS  # "a handwritten digit zero", ..., "... nine"
    from reference.loading import DIGIT_EMBEDS, compute_prompt_embeds, load_prompt_embeds, save_prompt_embeds

    if IS_DIGIT:
        PART0_PROMPTS = [DIGIT_PROMPTS[3], DIGIT_PROMPTS[5], DIGIT_PROMPTS[8]]
        SAMPLE_PROMPT = DIGIT_PROMPTS[2]  # the condition of 1.5-1.6
        EDIT_PROMPT = ""  # the weak condition of 1.3-1.4 and 1.7-1.7.2 (the digit model's "null" prompt)
        TEXT_EDIT_PROMPT = DIGIT_PROMPTS[4]  # 1.7.3
        ANAGRAMS = [(DIGIT_PROMPTS[6], DIGIT_PROMPTS[9]), (DIGIT_PROMPTS[0], DIGIT_PROMPTS[8]),
                    (DIGIT_PROMPTS[1], DIGIT_PROMPTS[7])]  # (upright, upside down)
        HYBRIDS = [(DIGIT_PROMPTS[1], DIGIT_PROMPTS[7]), (DIGIT_PROMPTS[1], DIGIT_PROMPTS[8]),
                   (DIGIT_PROMPTS[7], DIGIT_PROMPTS[3])]  # (seen from afar = low, up close = high)
        ROT90_ANAGRAM = (DIGIT_PROMPTS[1], DIGIT_PROMPTS[7])
        NEGATE_ANAGRAM = (DIGIT_PROMPTS[0], DIGIT_PROMPTS[8])
        LOGO_PROMPT = DIGIT_PROMPTS[8]
    else:
        PART0_PROMPTS = ["an oil painting of a snowy mountain village", "a man wearing a hat", "a rocket ship"]
        SAMPLE_PROMPT = "a high quality photo"
        EDIT_PROMPT = "a high quality photo"
        TEXT_EDIT_PROMPT = "a rocket ship"
        ANAGRAMS = [("an oil painting of an old man", "an oil painting of people around a campfire"),
                    ("a watercolor of a rabbit", "a watercolor of a duck"),
                    ("a charcoal drawing of a lighthouse", "a charcoal drawing of a sleeping cat")]
        HYBRIDS = [("a lithograph of a skull", "a lithograph of waterfalls"),
                   ("a pencil sketch of a lion's face", "a pencil sketch of a forest"),
                   ("a photo of the full moon", "a photo of a chocolate chip cookie")]
        ROT90_ANAGRAM = ("an oil painting of a sailing ship", "an oil painting of a horse")
        NEGATE_ANAGRAM = ("a black and white photo of a city at night", "a black and white photo of a snowy field")
        LOGO_PROMPT = "a minimalist flat logo of a rocket, vector art"
    ALL_PROMPTS = list(dict.fromkeys(
        ["", *PART0_PROMPTS, SAMPLE_PROMPT, EDIT_PROMPT, TEXT_EDIT_PROMPT, LOGO_PROMPT,
         *[p for pair in ANAGRAMS + HYBRIDS + [ROT90_ANAGRAM, NEGATE_ANAGRAM] for p in pair]]))

    if IS_DIGIT:
        EMBEDS_FILE = DIGIT_EMBEDS
    elif not Path(EMBEDS_FILE).is_file() or set(ALL_PROMPTS) - set(load_prompt_embeds(EMBEDS_FILE)):
        # encode once with T5 on the GPU (about 10 GB in fp16), save, then free the encoder
        save_prompt_embeds(compute_prompt_embeds(ALL_PROMPTS, model_id=model_id, device=DEVICE), EMBEDS_FILE,
                           dtype=torch.float16)
        gc.collect()
        torch.cuda.empty_cache()
    print(f"{len(ALL_PROMPTS)} prompts, embeddings in {EMBEDS_FILE}")
    '''),
    code('''
    # Load stage 1 and the embeddings. Device and dtype follow the model: fp16 on CUDA, fp32 on the CPU.
    from reference.loading import load_stage1, prompt_embeds

    stage_1 = load_stage1(model_id, device=DEVICE)
    stage_1.set_progress_bar_config(disable=True)
    DTYPE = stage_1.unet.dtype
    SIZE = stage_1.unet.config.sample_size  # 64 for DeepFloyd stage 1, 32 for the digit model
    print(f"UNet: {sum(p.numel() for p in stage_1.unet.parameters()) / 1e6:.1f} M parameters, {DTYPE}, "
          f"{SIZE}×{SIZE} images, text width {stage_1.unet.config.encoder_hid_dim}")
    embeds = load_prompt_embeds(EMBEDS_FILE, device=DEVICE, dtype=DTYPE)


    def embed(prompts):
        """(len(prompts), 77, W) embeddings of one prompt or a list of prompts, on the model's device/dtype."""
        return prompt_embeds(embeds, prompts).to(DEVICE, DTYPE)


    uncond = embed("")  # (1, 77, W): the empty prompt, for classifier-free guidance
    '''),
]

PART0 = [
    md("""
    ## Part 0 — Sampling with the pipeline

    First look at what the model can do before you write anything: the diffusers pipeline runs stage 1's
    full sampling loop (with classifier-free guidance) from your prompt embeddings. Run it with at least two
    values of `num_inference_steps` and the same seed. The stage-2 upsampling to 256×256 is at the end of
    the notebook (not required).
    """),
    code('''
    STEP_COUNTS = (5, 20) if FAST else (20, 50)
    part0_embeds = embed(PART0_PROMPTS)
    for steps in STEP_COUNTS:
        g = torch.Generator(DEVICE).manual_seed(SEED)
        part0_images = stage_1(prompt_embeds=part0_embeds, negative_prompt_embeds=uncond.expand_as(part0_embeds),
                               num_inference_steps=steps, output_type="pt", generator=g).images  # (3, 3, S, S)
        show_grid(part0_images, titles=PART0_PROMPTS, suptitle=f"stage 1, {steps} steps, seed {SEED}")
    '''),
    reflect("reflect_part0", 2, "Which prompts did you use? How well does each image match its prompt, and how "
               "do the results change with the number of inference steps? Report the seed you used."),
]

# The helpers students use but do not write; nothing a student implements is imported here.
PROVIDED = [
    md("""
    ## Provided helpers

    These are given; read their docstrings with `help(...)`:

    - `predict_noise(unet, xt, t, prompt_embeds)` — one UNet call. DeepFloyd's UNet returns 6 channels:
      the noise estimate ε̂ (channels 0–2) and a *predicted variance* (channels 3–5). It returns both,
      each (B, 3, H, W), on the UNet's device and dtype.
    - `add_variance(scheduler, predicted_variance, t, image, generator)` — adds DeepFloyd's learned noise
      term v_σ to an update (needs `set_strided_timesteps` first).
    - `set_strided_timesteps(scheduler, timesteps)` — tells the scheduler the list of timesteps you denoise
      along (`add_variance` looks the next timestep up in it).
    - `gaussian_noise(shape, generator, device, dtype)` — ε ~ N(0, I) drawn from a `torch.Generator`.
    - `denoise_step(scheduler, xt, eps, predicted_variance, t, t_prev, generator)` — one whole strided update
      (estimate x̂₀, mean, variance) for the later loops, once you have written its parts yourself.
    - `check_*` — input checks that raise a clear `ValueError` (use them at the top of your functions).
    - `load_image`, `show_grid`, `rect_mask` — images in [-1, 1], figure grids and rectangular masks.

    Randomness always comes from an explicit `torch.Generator`, so the same seed gives the same pictures.
    """),
    code('''
    import torchvision.transforms.functional as TF

    from reference.checks import (
        check_embeds, check_i_start, check_image, check_same_shape, check_timestep, check_timesteps,
    )
    from reference.denoise import add_variance, denoise_step, gaussian_noise, predict_noise, set_strided_timesteps
    from reference.editing import SDEDIT_I_STARTS, check_mask
    from reference.images import center_square_mask, load_image, rect_mask, show_grid
    '''),
]

TEST_IMAGES = [
    md("""
    ## Test images

    The course's test image is a photo of a tall tower. Offline we use scikit-image's rocket on its launch
    tower instead (with the digit model: a held-out MNIST digit). Use your own photos for the "own image"
    deliverables: upload them and pass the path to `load_image`, which center-crops, resizes to SIZE×SIZE and
    maps to [-1, 1]. The hand-drawn images below are drawn with PIL; on Colab draw your own in any paint
    program (or on paper, photographed), upload the PNG and load it the same way.
    """),
    code('''
    from PIL import Image, ImageDraw

    if IS_DIGIT:
        from reference.data import load_mnist
        from reference.digit_model import digits_to_images

        held_out = load_mnist(train=False, offline=True)  # digits the model never saw in training
        first_of_class = {}
        for i in range(len(held_out)):
            x, label = held_out[i]
            first_of_class.setdefault(int(label), x)
        digit = lambda n: digits_to_images(first_of_class[n][None], SIZE)  # (1, 3, SIZE, SIZE) in [-1, 1]
        test_image, own_images, web_image = digit(7), [digit(2), digit(0)], digit(4)
        strokes = [[(30, 28), (98, 28), (56, 108)], [(52, 40), (68, 22), (68, 108)]]  # a 7 and a 1
        drawings = []
        for line in strokes:
            canvas = Image.new("RGB", (128, 128), "black")
            ImageDraw.Draw(canvas).line(line, fill="white", width=14)
            drawings.append(canvas)
    else:
        test_image = load_image("skimage:rocket", SIZE)  # stand-in for the course's tower photo
        own_images = [load_image("skimage:astronaut", SIZE), load_image("skimage:chelsea", SIZE)]  # use yours
        WEB_URL = ("https://gitlab.com/scikit-image/data/-/raw/5c090b56df3988d988ff97928e2ef2d2cbe38e1b/"
                   "motorcycle_left.png")  # any photo URL works
        try:
            web_image = load_image(WEB_URL, SIZE)
        except ValueError as err:  # offline: a local photo instead
            print(f"{err}\\nUsing scikit-image's coffee photo as the web image.")
            web_image = load_image("skimage:coffee", SIZE)
        tree, boat = Image.new("RGB", (256, 256), (150, 200, 255)), Image.new("RGB", (256, 256), (90, 150, 230))
        pen = ImageDraw.Draw(tree)
        pen.rectangle([112, 150, 144, 240], fill=(110, 70, 30))
        pen.ellipse([60, 40, 196, 170], fill=(40, 150, 50), outline="black", width=4)
        pen = ImageDraw.Draw(boat)
        pen.polygon([(40, 160), (216, 160), (180, 210), (76, 210)], fill=(150, 60, 30), outline="black")
        pen.polygon([(128, 40), (128, 150), (200, 150)], fill="white", outline="black")
        drawings = [tree, boat]
    drawn_images = [load_image(d, SIZE) for d in drawings]
    to_model = lambda x: x.to(DEVICE, DTYPE)
    test_image, web_image = to_model(test_image), to_model(web_image)
    own_images, drawn_images = [to_model(x) for x in own_images], [to_model(x) for x in drawn_images]
    show_grid([test_image, *own_images, web_image, *drawn_images],
              titles=["test image", "own 1", "own 2", "web", "drawn 1", "drawn 2"])
    '''),
]

FORWARD = [
    md(r"""
    ## 1.1 The forward process

    A diffusion model is trained to undo a fixed noising process. Noising a clean image $x_0$ to time $t$
    both scales it down and adds Gaussian noise:

    $$x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon,
      \qquad \varepsilon \sim \mathcal N(0, I) \tag{A.2}$$

    $\bar\alpha_t$ falls from about 1 at $t = 0$ (clean) to about 0 at $t = 999$ (pure noise); the scheduler
    stores it as `stage_1.scheduler.alphas_cumprod`, a (1000,) fp32 tensor on the CPU. Index it with `t` and
    move the value to the image's device and dtype. When `noise` is not given, draw it with
    `gaussian_noise(x0.shape, generator, x0.device, x0.dtype)`.
    """),
    *graded(denoise.forward, 2),
    code('''
    alphas_cumprod = stage_1.scheduler.alphas_cumprod  # ᾱ_t for t = 0, ..., 999
    g = torch.Generator(DEVICE).manual_seed(SEED)
    noisy = {t: forward(test_image, t, alphas_cumprod, generator=g) for t in (250, 500, 750)}
    show_grid([test_image, *noisy.values()], titles=["original"] + [f"t = {t}" for t in noisy])
    '''),
    md("""
    ## 1.2 Classical denoising

    Before using the model, try the classical answer to noise: a Gaussian blur
    (`TF.gaussian_blur(x, kernel_size, sigma)`, odd kernel size, σ in pixels). Pick the kernel size and σ that
    look best for each noise level.
    """),
    code('''
    BLUR = {250: (5, 1.0), 500: (7, 1.5), 750: (9, 2.0)}  # t: (kernel_size, sigma) — try others, keep your best
    blurred = {t: TF.gaussian_blur(x, kernel_size=BLUR[t][0], sigma=BLUR[t][1]) for t, x in noisy.items()}
    show_grid([*noisy.values(), *blurred.values()],
              titles=[f"noisy, t = {t}" for t in noisy] + [f"blurred {BLUR[t]}" for t in noisy], ncols=3)
    '''),
    reflect("reflect_blur", 1, "Which kernel size and σ worked best at each noise level, and why can a blur "
               "not recover the clean image?"),
]

ONE_STEP = [
    md(r"""
    ## 1.3 One-step denoising

    The UNet $\varepsilon_\theta(x_t, t, \text{prompt})$ predicts the noise $\hat\varepsilon$ in $x_t$. Solving
    (A.2) for $x_0$ with that estimate gives a clean-image estimate in a single step:

    $$\hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\,\hat\varepsilon}{\sqrt{\bar\alpha_t}}$$

    Write `estimate_x0`, then `one_step_denoise`: one call of the provided `predict_noise` (keep ε̂, the first
    of the two outputs) followed by `estimate_x0`. The prompt here is a weak condition ("a high quality
    photo" for DeepFloyd, the empty prompt for the digit model).
    """),
    *graded(denoise.estimate_x0, 1),
    *graded(denoise.one_step_denoise, 1),
    code('''
    one_step = {t: one_step_denoise(stage_1.unet, x, t, embed(EDIT_PROMPT), alphas_cumprod) for t, x in noisy.items()}
    show_grid([im for t in noisy for im in (test_image, noisy[t], one_step[t])],
              titles=[f"{kind}, t = {t}" for t in noisy for kind in ("original", "noisy", "one-step")], ncols=3)
    '''),
]

ITERATIVE = [
    md(r"""
    ## 1.4 Iterative denoising

    One step from heavy noise gives a blurry average. Diffusion models instead denoise a little at a time.
    Running all 1000 steps is slow, so we skip along a **strided** list of timesteps, noisiest first:
    990, 960, …, 30, 0 (stride 30, 34 entries). Write `strided_timesteps`.
    """),
    *graded(denoise.strided_timesteps, 1),
    code('''
    timesteps = strided_timesteps()  # 990, 960, ..., 30, 0
    set_strided_timesteps(stage_1.scheduler, timesteps)  # add_variance reads the next timestep from this list
    print(len(timesteps), "timesteps:", timesteps[:3], "...", timesteps[-3:])
    '''),
    md(r"""
    From $t$ = `timesteps[i]` to the less noisy $t'$ = `timesteps[i + 1]`, with the clean estimate
    $\hat x_0$ from the current noise estimate:

    $$x_{t'} = \frac{\sqrt{\bar\alpha_{t'}}\,\beta_t}{1-\bar\alpha_t}\,\hat x_0
              + \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t'})}{1-\bar\alpha_t}\,x_t + v_\sigma \tag{A.3}$$

    where $\alpha_t = \bar\alpha_t / \bar\alpha_{t'}$ and $\beta_t = 1 - \alpha_t$ belong to the *strided* jump
    (mind the bars: these are not the scheduler's one-step α and β), and $v_\sigma$ is DeepFloyd's learned
    noise, added by the provided `add_variance`. Write `denoise_step_mean` (A.3 without $v_\sigma$), then
    `iterative_denoise`: for `i` from `i_start` to `len(timesteps) - 2`, predict the noise, estimate $\hat x_0$,
    take the mean and add the variance. `i_start` is an index into the list, not a timestep.
    """),
    *graded(denoise.denoise_step_mean, 2),
    *graded(denoise.iterative_denoise, 3),
    code('''
    i_start = 10  # t = timesteps[10] = 690
    g = torch.Generator(DEVICE).manual_seed(SEED)
    xt = forward(test_image, timesteps[i_start], alphas_cumprod, generator=g)
    final, frames = iterative_denoise(stage_1.unet, stage_1.scheduler, xt, i_start, embed(EDIT_PROMPT), timesteps,
                                      generator=g, return_intermediates=True)
    show_grid([x for _, x in frames] + [final], titles=[f"t = {t}" for t, _ in frames] + ["t = 0"],
              suptitle="iterative denoising, every 5th step")
    one_step_690 = one_step_denoise(stage_1.unet, xt, timesteps[i_start], embed(EDIT_PROMPT), alphas_cumprod)
    blur_690 = TF.gaussian_blur(xt, kernel_size=5, sigma=2.0)
    show_grid([test_image, final, one_step_690, blur_690],
              titles=["original", "iterative", "one-step", "Gaussian blur (5, 2)"])
    '''),
    reflect("reflect_denoising", 2, "Compare the Gaussian blur, the one-step estimate and iterative denoising "
               "from t = 690. Which recovers the image best, what does each get wrong, and why?"),
]

SAMPLING = [
    md("""
    ## 1.5 Sampling from pure noise

    Start `iterative_denoise` at `i_start = 0` from pure noise $x_{990} \\sim \\mathcal N(0, I)$: the model now
    makes images from nothing. Expect mediocre results — the next section fixes them.
    """),
    code('''
    N_SAMPLES = 2 if FAST else 5
    g = torch.Generator(DEVICE).manual_seed(SEED)
    start_noise = gaussian_noise((N_SAMPLES, 3, SIZE, SIZE), g, DEVICE, DTYPE)
    samples = iterative_denoise(stage_1.unet, stage_1.scheduler, start_noise, 0, embed(SAMPLE_PROMPT), timesteps,
                                generator=g)
    show_grid(samples, titles=[f"sample {k + 1}" for k in range(N_SAMPLES)], suptitle=f"{SAMPLE_PROMPT!r}, no CFG")
    '''),
    md(r"""
    ## 1.6 Classifier-free guidance (CFG)

    Run the UNet twice per step, with the prompt ($\varepsilon_c$) and with the empty prompt
    ($\varepsilon_u$), and extrapolate from the unconditional towards the conditional estimate:

    $$\varepsilon = \varepsilon_u + \gamma\,(\varepsilon_c - \varepsilon_u) \tag{A.4}$$

    γ = 0 is the unconditional model, γ = 1 the conditional one, and γ > 1 (we use γ = 7) trades diversity
    for quality. Write `cfg_noise` (it returns the guided ε and the *conditional* branch's predicted
    variance; both branches fit in one UNet call on a batch of 2B), then `iterative_denoise_cfg`: the loop of
    1.4 with the guided estimate. Use CFG from here on.
    """),
    *graded(denoise.cfg_noise, 2),
    *graded(denoise.iterative_denoise_cfg, 2),
    code('''
    g = torch.Generator(DEVICE).manual_seed(SEED)
    start_noise = gaussian_noise((N_SAMPLES, 3, SIZE, SIZE), g, DEVICE, DTYPE)  # the same noise as in 1.5
    samples_cfg = iterative_denoise_cfg(stage_1.unet, stage_1.scheduler, start_noise, 0, embed(SAMPLE_PROMPT), uncond,
                                        timesteps, scale=7.0, generator=g)
    show_grid(samples_cfg, titles=[f"sample {k + 1}" for k in range(N_SAMPLES)],
              suptitle=f"{SAMPLE_PROMPT!r}, CFG γ = 7")
    '''),
    reflect("reflect_cfg", 2, "How do the CFG samples differ from those of 1.5, and why does extrapolating "
               "past the conditional estimate (γ > 1) change them that way?"),
]

EDITING = [
    md("""
    ## 1.7 Image-to-image translation (SDEdit)

    Noise a real image part of the way with `forward` and let the model denoise it with CFG: it must invent
    the details the noise destroyed, and the result is an edit of the original, pulled towards images the
    model knows. Write `sdedit`: noise to t = `timesteps[i_start]`, then call your `iterative_denoise_cfg`
    from `i_start`. A larger `i_start` means less noise, so the edit stays closer to the original. Show the
    test image and two images of your own at `i_start` = 1, 3, 5, 7, 10, 20.
    """),
    *graded(editing.sdedit, 2),
    code('''
    I_STARTS = (1, 5, 10, 20) if FAST else SDEDIT_I_STARTS  # (1, 3, 5, 7, 10, 20): t = 960 ... 390


    def show_sdedit_sweep(images, names, prompt, i_starts=I_STARTS):
        """SDEdit of a list of (1, 3, S, S) images at every level of ``i_starts``: one row per image, CFG γ = 7."""
        g = torch.Generator(DEVICE).manual_seed(SEED)
        batch = torch.cat(images)
        edits = [sdedit(stage_1.unet, stage_1.scheduler, batch, i, embed(prompt), uncond, timesteps, scale=7.0,
                        generator=g) for i in i_starts]
        show_grid([im for k in range(len(images)) for im in [e[k] for e in edits] + [batch[k]]],
                  titles=[title for name in names for title in [f"i_start = {i}" for i in i_starts] + [name]],
                  ncols=len(i_starts) + 1, suptitle=f"SDEdit with {prompt!r}")


    show_sdedit_sweep([test_image, *own_images], ["test image", "own 1", "own 2"], EDIT_PROMPT)
    '''),
    md("""
    ### 1.7.1 Hand-drawn and web images

    SDEdit works best on inputs that are far from natural images: a web image and two drawings.
    """),
    code('''
    show_sdedit_sweep([web_image, *drawn_images], ["web image", "drawing 1", "drawing 2"], EDIT_PROMPT)
    '''),
    reflect("reflect_sdedit", 2, "Describe how the edits change with i_start for the test image, your own "
               "images, the web image and your drawings. At which level does the result stop looking like the "
               "original, and why?"),
    md(r"""
    ### 1.7.2 Inpainting

    To regenerate only a region, start from pure noise and, after every update, reset the pixels outside
    the mask $m$ (1 = regenerate, 0 = keep) to the original noised to the *new* timestep:

    $$x_{t'} \leftarrow m\,x_{t'} + (1 - m)\,\text{forward}(x_{\text{orig}}, t') \tag{A.5}$$

    Write `inpaint` (the CFG loop from `i = 0`, plus that one line per step; the provided `denoise_step` does
    the strided update, and `check_mask` checks the mask). Inpaint the top of the test image and two of your
    own images with masks of your choice (`rect_mask`, `center_square_mask`, or a tensor you draw).
    """),
    *graded(editing.inpaint, 3),
    code('''
    S = SIZE
    masks = torch.cat([
        rect_mask((S, S), 0, S * 5 // 16, S * 3 // 8, S * 21 // 32),  # the top of the tower (of the digit)
        rect_mask((S, S), 0, S // 2, 0, S),  # the top half
        center_square_mask(S, 0.5),  # the middle
    ]).to(DEVICE, DTYPE)  # (3, 1, S, S): 1 = regenerate
    originals = torch.cat([test_image, *own_images])
    g = torch.Generator(DEVICE).manual_seed(SEED)
    inpainted = inpaint(stage_1.unet, stage_1.scheduler, originals, masks, embed(EDIT_PROMPT), uncond, timesteps,
                        scale=7.0, generator=g)
    show_grid([im for k in range(3) for im in (originals[k], (2 * masks[k] - 1).expand(3, S, S),
                                               originals[k] * (1 - masks[k]), inpainted[k])],
              titles=["original", "mask", "kept", "inpainted"] * 3, ncols=4)
    '''),
    reflect("reflect_inpaint", 1, "Which masks did you choose, and how well does the inpainted region blend "
               "with the kept pixels? Did rerunning with other seeds help?"),
    md("""
    ### 1.7.3 Text-conditional image-to-image

    The same SDEdit with a real prompt instead of the weak one: the noise level now decides how much of the
    original survives the prompt.
    """),
    code('''
    show_sdedit_sweep([test_image, *own_images], ["test image", "own 1", "own 2"], TEXT_EDIT_PROMPT)
    '''),
    reflect("reflect_text_edit", 1, "Which prompt did you use, and at which noise levels does the result "
               "combine the prompt with the original image?"),
]

ANAGRAM = [
    md(r"""
    ## 1.8 Visual anagrams

    An image that shows one prompt upright and another upside down. At each step denoise the image with
    prompt 1 and its flipped version with prompt 2, flip the second estimate back, and average:

    $$\varepsilon_1 = \text{CFG}(x_t, p_1), \quad \varepsilon_2 = \text{flip}(\text{CFG}(\text{flip}(x_t), p_2)),
      \quad \varepsilon = (\varepsilon_1 + \varepsilon_2)/2$$

    then take the usual strided update (A.3). Write `flip_upside_down` (flip along the height axis), then
    `visual_anagram`, which takes any *view*: a pair `(view, inverse)` of functions on images. Each branch
    uses its own CFG with the empty prompt; add the variance predicted for the upright branch.
    """),
    *graded(illusions.flip_upside_down, 1),
    code('''
    flip_view = (flip_upside_down, flip_upside_down)  # (view, inverse): a flip is its own inverse
    '''),
    *graded(illusions.visual_anagram, 3),
    code('''
    g = torch.Generator(DEVICE).manual_seed(SEED)
    xt = gaussian_noise((len(ANAGRAMS), 3, SIZE, SIZE), g, DEVICE, DTYPE)  # one anagram per prompt pair
    anagrams = visual_anagram(stage_1.unet, stage_1.scheduler, xt, 0, embed([p for p, _ in ANAGRAMS]),
                              embed([q for _, q in ANAGRAMS]), uncond, timesteps, view=flip_view, scale=7.0,
                              generator=g)
    show_grid([im for k in range(len(ANAGRAMS)) for im in (anagrams[k:k + 1], flip_upside_down(anagrams[k:k + 1]))],
              titles=[t for p, q in ANAGRAMS for t in (p, f"upside down: {q}")], ncols=2)
    '''),
    reflect("reflect_anagrams", 2, "Which prompt pairs did you choose, and why? Which anagrams work, and what "
               "makes a pair of prompts easy or hard to combine?"),
]

HYBRID = [
    md(r"""
    ## 1.9 Hybrid images

    An image that shows one prompt from afar (its low frequencies) and another up close (its high
    frequencies). Combine the two CFG noise estimates by frequency:

    $$\varepsilon = f_\text{lowpass}(\varepsilon_1) + f_\text{highpass}(\varepsilon_2)$$

    with $f_\text{lowpass}$ a Gaussian blur (kernel size 33, σ = 2) and
    $f_\text{highpass}(x) = x - f_\text{lowpass}(x)$.
    Write `lowpass`, `highpass` and `make_hybrids` (add the average of the two conditional variances).
    """),
    *graded(illusions.lowpass, 1),
    *graded(illusions.highpass, 1),
    *graded(illusions.make_hybrids, 3),
    code('''
    g = torch.Generator(DEVICE).manual_seed(SEED)
    xt = gaussian_noise((len(HYBRIDS), 3, SIZE, SIZE), g, DEVICE, DTYPE)  # one hybrid per prompt pair
    hybrids = make_hybrids(stage_1.unet, stage_1.scheduler, xt, 0, embed([low for low, _ in HYBRIDS]),
                           embed([high for _, high in HYBRIDS]), uncond, timesteps, scale=7.0, generator=g)
    show_grid([im for k in range(len(HYBRIDS)) for im in (hybrids[k], lowpass(hybrids[k:k + 1]))],
              titles=[t for low, high in HYBRIDS for t in (f"up close: {high}", f"from afar: {low}")], ncols=2)
    '''),
    reflect("reflect_hybrids", 2, "Which prompt pairs did you choose for the hybrids, and why? Does each "
               "image read as the low-frequency prompt from afar and as the high-frequency one up close?"),
]

BELLS_AND_WHISTLES = [
    md("""
    ## Bells & whistles

    **More views for anagrams.** Any view that only moves pixels around (or negates them) keeps Gaussian noise
    Gaussian, so the UNet still sees a valid noisy image. Write a 90° rotation and its inverse, and colour
    inversion (negation in [-1, 1]), and make an anagram with each.
    """),
    *graded(illusions.rot90_ccw, 1),
    *graded(illusions.rot90_cw, 1),
    *graded(illusions.negate, 1),
    code('''
    rot90_view = (rot90_ccw, rot90_cw)
    negate_view = (negate, negate)
    extra = []
    for view, (p, q), name in ((rot90_view, ROT90_ANAGRAM, "rotated 90°"), (negate_view, NEGATE_ANAGRAM, "negated")):
        g = torch.Generator(DEVICE).manual_seed(SEED)
        xt = gaussian_noise((1, 3, SIZE, SIZE), g, DEVICE, DTYPE)
        image = visual_anagram(stage_1.unet, stage_1.scheduler, xt, 0, embed(p), embed(q), uncond, timesteps,
                               view=view, scale=7.0, generator=g)
        extra += [(image, p), (view[0](image), f"{name}: {q}")]
    show_grid([im for im, _ in extra], titles=[t for _, t in extra], ncols=2)
    '''),
    md("""
    **A course logo.** Text-conditional image-to-image of a drawing (or of a logo you like) with a prompt of
    your choice.
    """),
    code('''
    show_sdedit_sweep([drawn_images[0]], ["drawing"], LOGO_PROMPT, i_starts=(3, 7) if FAST else (3, 5, 7, 10))
    '''),
    reflect("reflect_bells_whistles", 1, "Which extra views and which logo did you make, and how well did "
               "they work?"),
]

UPSAMPLING = [
    md("""
    ## Upsampling with stage 2 (provided, not required)

    DeepFloyd's stage 2 is a second diffusion model that turns 64×64 images into 256×256 ones, conditioned on
    the small image and the prompt (`reference.upsample.upsample`). The digit model has no stage 2.
    """),
    code('''
    if IS_DIGIT:
        print("The digit model has no stage 2: nothing to upsample.")
    else:
        from reference.loading import load_stage2
        from reference.upsample import upsample

        stage_2 = load_stage2(device=DEVICE)
        g = torch.Generator(DEVICE).manual_seed(SEED)
        upsampled = upsample(stage_2, part0_images.to(DEVICE, DTYPE), part0_embeds, uncond.expand_as(part0_embeds),
                             num_inference_steps=20, generator=g)
        show_grid(upsampled, titles=PART0_PROMPTS, suptitle="stage 2: 256×256")
    '''),
]

ARTIFACTS = [md("## Artifacts for grading on a GPU\n\n*Added in a later step.*")]

CELLS = [
    *SETUP, *PROVIDED, *PART0, *TEST_IMAGES, *FORWARD, *ONE_STEP, *ITERATIVE, *SAMPLING, *EDITING, *ANAGRAM,
    *HYBRID, *BELLS_AND_WHISTLES, *UPSAMPLING, *ARTIFACTS,
]
