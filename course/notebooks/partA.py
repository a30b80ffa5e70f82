"""The Part A notebook template: "The Power of Diffusion Models" with DeepFloyd IF (or the digit model).

``CELLS`` lists the notebook's cells in order (``course.notebooks.cells``). Students write the stages of
``reference.denoise``, ``reference.editing`` and ``reference.illusions``: each ``Solution`` holds one of
those functions (lifted with ``inspect``) and is followed by its public ``Check``. Helpers (UNet call,
variance, plotting, loading) are imported, never written. The same notebook runs DeepFloyd IF on a
GPU and the project's digit model on a CPU; ``FAST`` (environment variable ``FWD_FAST``) trims the
figures so that the whole notebook runs on a CPU in about two minutes. The setup cells (parameters,
Colab, model, prompts, helpers, Part 0, test images) are here; sections 1.1-1.9 in ``partA_stages``.

Time convention (Part A, DDPM): t = 0 is clean, t = 999 is pure noise.
"""

from __future__ import annotations

from course.notebooks.partA_stages import (
    ANAGRAM,
    BELLS_AND_WHISTLES,
    EDITING,
    FORWARD,
    HYBRID,
    ITERATIVE,
    ONE_STEP,
    SAMPLING,
    UPSAMPLING,
    code,
    md,
    written,
)

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
    # Parameters (tools such as papermill may override this cell; FWD_* environment variables set defaults).
    import os

    import torch

    DEVICE = os.environ.get("FWD_DEVICE", "auto")  # "auto" = cuda when available, else cpu
    DEVICE = ("cuda" if torch.cuda.is_available() else "cpu") if DEVICE == "auto" else DEVICE
    # "digit" or a DeepFloyd stage-1 id: IF-I-XL-v1.0, or the lighter IF-I-L-v1.0 / IF-I-M-v1.0
    MODEL = os.environ.get("FWD_MODEL") or ("DeepFloyd/IF-I-XL-v1.0" if DEVICE.startswith("cuda") else "digit")
    # FAST: fewer SDEdit levels and samples (~2 min on a CPU); on by default under nbgrader validate/autograde
    FAST = os.environ.get("FWD_FAST", "1" if "NBGRADER_EXECUTION" in os.environ else "0") == "1"
    SEED = int(os.environ.get("FWD_SEED", "180"))  # report your seed and use it everywhere
    EMBEDS_FILE = "prompt_embeds.safetensors"  # DeepFloyd only: your prompt embeddings (made below if missing)
    MODEL_2 = os.environ.get("FWD_MODEL_2") or "DeepFloyd/IF-II-L-v1.0"  # DeepFloyd only: stage 2 (or IF-II-M-v1.0)
    # Keep 30, the course's stride of the strided timesteps (33 steps). Only test runs of this notebook change it
    # (FWD_STRIDE=990: one step per loop); it then also shortens Part 0 and stage 2.
    STRIDE = int(os.environ.get("FWD_STRIDE", "30"))
    ''', tags=("parameters",)),
    code('''
    # Colab setup: install the course kit and, for DeepFloyd, log in to Hugging Face. Elsewhere it does
    # nothing: install the kit yourself, and the loaders read HF_TOKEN or your stored login.
    import importlib.util
    import subprocess
    import sys

    IN_COLAB = "google.colab" in sys.modules
    # The course kit's pip source, as your instructors give it: the wheel fun_with_diffusion_kit-*.whl you
    # uploaded, or a URL of it. (Only the kit: helpers, the digit model and the public checks.)
    PACKAGE_SOURCE = os.environ.get("FWD_PACKAGE_SOURCE", "")
    if IN_COLAB and importlib.util.find_spec("fwd_kit") is None:
        if not PACKAGE_SOURCE:
            raise ValueError("The course kit is not installed: set PACKAGE_SOURCE to its pip source "
                             "(the kit's wheel file or its URL, from your instructors) and run this cell again.")
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
    from fwd_kit.loading import DIGIT_MODEL, choose_stage1

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

    from fwd_kit.digit_model import DIGIT_PROMPTS  # "a handwritten digit zero", ..., "... nine"
    from fwd_kit.loading import DIGIT_EMBEDS, compute_prompt_embeds, load_prompt_embeds, save_prompt_embeds

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
    from fwd_kit.loading import load_stage1, prompt_embeds

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
    STEP_COUNTS = ((5, 10) if FAST else (20, 50)) if STRIDE == 30 else (1, 2)  # (1, 2): a test run (STRIDE)
    part0_embeds = embed(PART0_PROMPTS)
    for steps in STEP_COUNTS:
        g = torch.Generator(DEVICE).manual_seed(SEED)
        part0_images = stage_1(prompt_embeds=part0_embeds, negative_prompt_embeds=uncond.expand_as(part0_embeds),
                               num_inference_steps=steps, output_type="pt", generator=g).images  # (3, 3, S, S)
        show_grid(part0_images, titles=[fill(p, 24) for p in PART0_PROMPTS],
                  suptitle=f"stage 1, {steps} steps, seed {SEED}",
                  deliverable=note("A0-samples", key=f"steps-{steps}", items=PART0_PROMPTS, steps=steps, seed=SEED,
                                   model=MODEL))
    '''),
    written("reflect_part0"),
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
    - `denoise_step(scheduler, xt, eps, predicted_variance, t, t_prev, generator)` — given in a cell once you
      have written its parts (`estimate_x0`, `denoise_step_mean`): one whole strided update for the later loops.
    - `check_*` — input checks that raise a clear `ValueError` (use them at the top of your functions).
    - `load_image`, `show_grid`, `rect_mask` — images in [-1, 1], figure grids and rectangular masks.
    - `note(...)` — passed to `show_grid` as `deliverable=`, it also saves the figure for your write-up page.

    Randomness always comes from an explicit `torch.Generator`, so the same seed gives the same pictures.
    """),
    code('''
    from textwrap import fill  # wraps long titles: fill(prompt, 24)

    import torchvision.transforms.functional as TF

    from fwd_kit.validate import (
        check_embeds, check_i_start, check_image, check_mask, check_same_shape, check_timestep, check_timesteps,
    )
    from fwd_kit.sampling import SDEDIT_I_STARTS, add_variance, gaussian_noise, predict_noise, set_strided_timesteps
    from fwd_kit.images import center_square_mask, load_image, rect_mask, show_grid
    from fwd_kit.figure_notes import note, writeup_folder

    # show_grid(..., deliverable=note(...)) also saves a figure for your write-up page, with its settings:
    # python -m fwd_kit.writeup partA.ipynb --out site/ lays them out (a FAST run saves to a folder of its own).
    writeup_folder("writeup_figures_fast" if FAST else "writeup_figures")
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
        from fwd_kit.data import load_mnist
        from fwd_kit.digit_model import digits_to_images

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

ARTIFACTS = [
    md("""
    ## Artifacts for grading on a GPU

    The graders run your functions on a CPU with small models. What they cannot rerun is your work with
    DeepFloyd on a GPU, so this cell runs your functions once more on the course's fixed inputs (a few
    seconds) and saves what they return. Download `partA_bundle_inputs.safetensors` for your `MODEL`
    from the course page into this folder, run the cell, and submit `partA_artifacts.safetensors` with
    the notebook. It holds no pictures of yours, only your functions' outputs on the course's inputs.
    """),
    code('''
    from fwd_kit.artifacts import export_artifacts

    BUNDLE_FILE = "partA_bundle_inputs.safetensors"  # from your instructors, made for your MODEL
    if Path(BUNDLE_FILE).is_file():
        export_artifacts(globals(), BUNDLE_FILE, stage_1.unet, stage_1.scheduler, "partA_artifacts.safetensors")
        print("Submit partA_artifacts.safetensors with this notebook.")
    else:
        print(f"No {BUNDLE_FILE} here: download it from the course page, run this cell again, and submit "
              "partA_artifacts.safetensors.")
    '''),
]

CELLS = [
    *SETUP, *PROVIDED, *PART0, *TEST_IMAGES, *FORWARD, *ONE_STEP, *ITERATIVE, *SAMPLING, *EDITING, *ANAGRAM,
    *HYBRID, *BELLS_AND_WHISTLES, *UPSAMPLING, *ARTIFACTS,
]
