"""The stages of the Part A notebook (sections 1.1-1.9, bells & whistles, stage 2), as template cells.

``course.notebooks.partA`` puts them after the setup cells. Each student function is a ``Solution``
lifted from ``reference`` and followed by its public ``Check``; the figure cells call the student's
functions on the test images and prompts the setup cells define.

Time convention (Part A, DDPM): t = 0 is clean, t = 999 is pure noise.
"""

from __future__ import annotations

from textwrap import dedent

from course.notebooks.cells import Code, Markdown, graded, written
from reference import denoise, editing, illusions


def md(text: str) -> Markdown:
    """Instructions, written indented in this file: dedented and stripped."""
    return Markdown(dedent(text).strip())


def code(source: str, tags: tuple[str, ...] = ()) -> Code:
    """Provided code, written indented in this file: dedented and stripped."""
    return Code(dedent(source).strip(), tags)


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
    *graded(denoise.forward),
    code('''
    alphas_cumprod = stage_1.scheduler.alphas_cumprod  # ᾱ_t for t = 0, ..., 999
    g = torch.Generator(DEVICE).manual_seed(SEED)
    noisy = {t: forward(test_image, t, alphas_cumprod, generator=g) for t in (250, 500, 750)}
    show_grid([test_image, *noisy.values()], titles=["original"] + [f"t = {t}" for t in noisy],
              deliverable=note("A1.1-forward", t=list(noisy), seed=SEED))
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
              titles=[f"noisy, t = {t}" for t in noisy] + [f"blurred {BLUR[t]}" for t in noisy], ncols=3,
              deliverable=note("A1.2-blur", t=list(noisy), kernel_size_sigma=BLUR, seed=SEED))
    '''),
    written("reflect_blur"),
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
    *graded(denoise.estimate_x0),
    *graded(denoise.one_step_denoise),
    code('''
    one_step = {t: one_step_denoise(stage_1.unet, x, t, embed(EDIT_PROMPT), alphas_cumprod) for t, x in noisy.items()}
    show_grid([im for t in noisy for im in (test_image, noisy[t], one_step[t])],
              titles=[f"{kind}, t = {t}" for t in noisy for kind in ("original", "noisy", "one-step")], ncols=3,
              deliverable=note("A1.3-one-step", t=list(noisy), prompt=EDIT_PROMPT, seed=SEED))
    '''),
]

ITERATIVE = [
    md(r"""
    ## 1.4 Iterative denoising

    One step from heavy noise gives a blurry average. Diffusion models instead denoise a little at a time.
    Running all 1000 steps is slow, so we skip along a **strided** list of timesteps, noisiest first:
    990, 960, …, 30, 0 (stride 30, 34 entries). Write `strided_timesteps`.
    """),
    *graded(denoise.strided_timesteps),
    code('''
    timesteps = strided_timesteps(stride=STRIDE)  # 990, 960, ..., 30, 0
    set_strided_timesteps(stage_1.scheduler, timesteps)  # add_variance reads the next timestep from this list
    course_index = lambda i: i * 30 // STRIDE  # the course's index i at another STRIDE (test runs only): the same t
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
    *graded(denoise.denoise_step_mean),
    code('''
    # Provided: one whole strided update from your own parts (the later loops use it).
    def denoise_step(scheduler, xt, eps, predicted_variance, t, t_prev, generator=None):
        """x_t → x_t′: x̂0 by your estimate_x0 (A.2), the mean by your denoise_step_mean (A.3), then + v_σ."""
        x0_hat = estimate_x0(xt, eps, t, scheduler.alphas_cumprod)
        mean = denoise_step_mean(xt, x0_hat, t, t_prev, scheduler.alphas_cumprod)
        return add_variance(scheduler, predicted_variance, t, mean, generator)
    '''),
    *graded(denoise.iterative_denoise),
    code('''
    i_start = course_index(10)  # t = timesteps[10] = 690
    g = torch.Generator(DEVICE).manual_seed(SEED)
    xt = forward(test_image, timesteps[i_start], alphas_cumprod, generator=g)
    final, frames = iterative_denoise(stage_1.unet, stage_1.scheduler, xt, i_start, embed(EDIT_PROMPT), timesteps,
                                      generator=g, return_intermediates=True)
    show_grid([x for _, x in frames] + [final], titles=[f"t = {t}" for t, _ in frames] + ["t = 0"],
              suptitle="iterative denoising, every 5th step",
              deliverable=note("A1.4-every-5th", i_start=i_start, t=[t for t, _ in frames] + [0], prompt=EDIT_PROMPT,
                               seed=SEED))
    one_step_690 = one_step_denoise(stage_1.unet, xt, timesteps[i_start], embed(EDIT_PROMPT), alphas_cumprod)
    blur_690 = TF.gaussian_blur(xt, kernel_size=5, sigma=2.0)
    show_grid([test_image, final, one_step_690, blur_690],
              titles=["original", "iterative", "one-step", "Gaussian blur (5, 2)"],
              deliverable=note("A1.4-comparison", caption=f"from t = {timesteps[i_start]}: iterative, one-step, blur",
                               t=timesteps[i_start], kernel_size_sigma=(5, 2.0), seed=SEED))
    '''),
    written("reflect_denoising"),
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
    show_grid(samples, titles=[f"sample {k + 1}" for k in range(N_SAMPLES)], suptitle=f"{SAMPLE_PROMPT!r}, no CFG",
              deliverable=note("A1.5-samples", items=[f"sample {k + 1}" for k in range(N_SAMPLES)],
                               prompt=SAMPLE_PROMPT, seed=SEED))
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
    *graded(denoise.cfg_noise),
    *graded(denoise.iterative_denoise_cfg),
    code('''
    g = torch.Generator(DEVICE).manual_seed(SEED)
    start_noise = gaussian_noise((N_SAMPLES, 3, SIZE, SIZE), g, DEVICE, DTYPE)  # the same noise as in 1.5
    samples_cfg = iterative_denoise_cfg(stage_1.unet, stage_1.scheduler, start_noise, 0, embed(SAMPLE_PROMPT), uncond,
                                        timesteps, scale=7.0, generator=g)
    show_grid(samples_cfg, titles=[f"sample {k + 1}" for k in range(N_SAMPLES)],
              suptitle=f"{SAMPLE_PROMPT!r}, CFG γ = 7",
              deliverable=note("A1.6-cfg-samples", items=[f"sample {k + 1}" for k in range(N_SAMPLES)],
                               prompt=SAMPLE_PROMPT, scale=7.0, seed=SEED))
    '''),
    written("reflect_cfg"),
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
    *graded(editing.sdedit),
    code('''
    I_STARTS = (5, 10, 20) if FAST else SDEDIT_I_STARTS  # (1, 3, 5, 7, 10, 20): t = 960 ... 390
    I_STARTS = tuple(dict.fromkeys(map(course_index, I_STARTS)))  # the same unless STRIDE was changed


    def show_sdedit_sweep(images, names, prompt, deliverable, i_starts=I_STARTS):
        """SDEdit of a list of (1, 3, S, S) images at every level of ``i_starts``: one row per image, CFG γ = 7;
        saved for the write-up as ``deliverable`` (an id of fwd_kit.deliverables)."""
        g = torch.Generator(DEVICE).manual_seed(SEED)
        batch = torch.cat(images)
        edits = [sdedit(stage_1.unet, stage_1.scheduler, batch, i, embed(prompt), uncond, timesteps, scale=7.0,
                        generator=g) for i in i_starts]
        show_grid([im for k in range(len(images)) for im in [e[k] for e in edits] + [batch[k]]],
                  titles=[title for name in names for title in [f"i_start = {i}" for i in i_starts] + [name]],
                  ncols=len(i_starts) + 1, suptitle=f"SDEdit with {prompt!r}",
                  deliverable=note(deliverable, items=names, prompt=prompt, i_start=list(i_starts), scale=7.0,
                                   seed=SEED))


    show_sdedit_sweep([test_image], ["test image"], EDIT_PROMPT, "A1.7-test-image")
    show_sdedit_sweep(own_images, ["own 1", "own 2"], EDIT_PROMPT, "A1.7-own-images")
    '''),
    md("""
    ### 1.7.1 Hand-drawn and web images

    SDEdit works best on inputs that are far from natural images: a web image and two drawings.
    """),
    code('''
    show_sdedit_sweep([web_image], ["web image"], EDIT_PROMPT, "A1.7.1-web")
    show_sdedit_sweep(drawn_images, [f"drawing {k + 1}" for k in range(len(drawn_images))], EDIT_PROMPT,
                      "A1.7.1-hand-drawn")
    '''),
    written("reflect_sdedit"),
    md(r"""
    ### 1.7.2 Inpainting

    To regenerate only a region, start from pure noise and, after every update, reset the pixels outside
    the mask $m$ (1 = regenerate, 0 = keep) to the original noised to the *new* timestep:

    $$x_{t'} \leftarrow m\,x_{t'} + (1 - m)\,\text{forward}(x_{\text{orig}}, t') \tag{A.5}$$

    Write `inpaint` (the CFG loop from `i = 0`, plus that one line per step; the provided `denoise_step` does
    the strided update, and `check_mask` checks the mask). Inpaint the top of the test image and two of your
    own images with masks of your choice (`rect_mask`, `center_square_mask`, or a tensor you draw).
    """),
    *graded(editing.inpaint),
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
    row = lambda k: (originals[k], (2 * masks[k] - 1).expand(3, S, S), originals[k] * (1 - masks[k]), inpainted[k])
    show_grid([*row(0)], titles=["original", "mask", "kept", "inpainted"], ncols=4,
              deliverable=note("A1.7.2-test-image", items=["test image"], prompt=EDIT_PROMPT, scale=7.0, seed=SEED))
    show_grid([im for k in (1, 2) for im in row(k)], titles=["original", "mask", "kept", "inpainted"] * 2, ncols=4,
              deliverable=note("A1.7.2-own-images", items=["own 1", "own 2"], prompt=EDIT_PROMPT, scale=7.0,
                               seed=SEED))
    '''),
    written("reflect_inpaint"),
    md("""
    ### 1.7.3 Text-conditional image-to-image

    The same SDEdit with a real prompt instead of the weak one: the noise level now decides how much of the
    original survives the prompt.
    """),
    code('''
    show_sdedit_sweep([test_image], ["test image"], TEXT_EDIT_PROMPT, "A1.7.3-test-image")
    show_sdedit_sweep(own_images, ["own 1", "own 2"], TEXT_EDIT_PROMPT, "A1.7.3-own-images")
    '''),
    written("reflect_text_edit"),
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
    *graded(illusions.flip_upside_down),
    code('''
    flip_view = (flip_upside_down, flip_upside_down)  # (view, inverse): a flip is its own inverse
    '''),
    *graded(illusions.visual_anagram),
    code('''
    g = torch.Generator(DEVICE).manual_seed(SEED)
    xt = gaussian_noise((len(ANAGRAMS), 3, SIZE, SIZE), g, DEVICE, DTYPE)  # one anagram per prompt pair
    anagrams = visual_anagram(stage_1.unet, stage_1.scheduler, xt, 0, embed([p for p, _ in ANAGRAMS]),
                              embed([q for _, q in ANAGRAMS]), uncond, timesteps, view=flip_view, scale=7.0,
                              generator=g)
    show_grid([im for k in range(len(ANAGRAMS)) for im in (anagrams[k:k + 1], flip_upside_down(anagrams[k:k + 1]))],
              titles=[fill(t, 24) for p, q in ANAGRAMS for t in (p, f"upside down: {q}")], ncols=2,
              deliverable=note("A1.8-anagrams", items=[f"{p} / {q}" for p, q in ANAGRAMS], view="flip", scale=7.0,
                               seed=SEED))
    '''),
    written("reflect_anagrams"),
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
    *graded(illusions.lowpass),
    *graded(illusions.highpass),
    *graded(illusions.make_hybrids),
    code('''
    g = torch.Generator(DEVICE).manual_seed(SEED)
    xt = gaussian_noise((len(HYBRIDS), 3, SIZE, SIZE), g, DEVICE, DTYPE)  # one hybrid per prompt pair
    hybrids = make_hybrids(stage_1.unet, stage_1.scheduler, xt, 0, embed([low for low, _ in HYBRIDS]),
                           embed([high for _, high in HYBRIDS]), uncond, timesteps, scale=7.0, generator=g)
    show_grid([im for k in range(len(HYBRIDS)) for im in (hybrids[k], lowpass(hybrids[k:k + 1]))],
              titles=[fill(t, 24) for low, high in HYBRIDS for t in (f"up close: {high}", f"from afar: {low}")],
              ncols=2, deliverable=note("A1.9-hybrids", items=[f"{low} / {high}" for low, high in HYBRIDS],
                                        lowpass="Gaussian blur (33, 2)", scale=7.0, seed=SEED))
    '''),
    written("reflect_hybrids"),
]

BELLS_AND_WHISTLES = [
    md("""
    ## Bells & whistles

    **More views for anagrams.** Any view that only moves pixels around (or negates them) keeps Gaussian noise
    Gaussian, so the UNet still sees a valid noisy image. Write a 90° rotation and its inverse, and colour
    inversion (negation in [-1, 1]), and make an anagram with each.
    """),
    *graded(illusions.rot90_ccw),
    *graded(illusions.rot90_cw),
    *graded(illusions.negate),
    code('''
    rot90_view = (rot90_ccw, rot90_cw)
    negate_view = (negate, negate)
    extra, views_made = [], []
    for view, (p, q), name in ((rot90_view, ROT90_ANAGRAM, "rotated 90°"), (negate_view, NEGATE_ANAGRAM, "negated")):
        g = torch.Generator(DEVICE).manual_seed(SEED)
        xt = gaussian_noise((1, 3, SIZE, SIZE), g, DEVICE, DTYPE)
        image = visual_anagram(stage_1.unet, stage_1.scheduler, xt, 0, embed(p), embed(q), uncond, timesteps,
                               view=view, scale=7.0, generator=g)
        extra += [(image, p), (view[0](image), f"{name}: {q}")]
        views_made.append(name)
    show_grid([im for im, _ in extra], titles=[fill(t, 24) for _, t in extra], ncols=2,
              deliverable=note("ABW-views", items=views_made, scale=7.0, seed=SEED))
    '''),
    md("""
    **A course logo.** Text-conditional image-to-image of a drawing (or of a logo you like) with a prompt of
    your choice.
    """),
    code('''
    logo_i_starts = tuple(dict.fromkeys(map(course_index, (7,) if FAST else (3, 5, 7, 10))))
    show_sdedit_sweep([drawn_images[0]], ["drawing"], LOGO_PROMPT, "ABW-logo", i_starts=logo_i_starts)
    '''),
    written("reflect_bells_whistles"),
]

UPSAMPLING = [
    md("""
    ## Upsampling with stage 2 (provided, not required)

    DeepFloyd's stage 2 is a second diffusion model that turns 64×64 images into 256×256 ones, conditioned on
    the small image and the prompt (`fwd_kit.upsample.upsample`). The digit model has no stage 2.
    """),
    code('''
    if IS_DIGIT:
        print("The digit model has no stage 2: nothing to upsample.")
    else:
        from fwd_kit.loading import load_stage2
        from fwd_kit.upsample import upsample

        stage_2 = load_stage2(MODEL_2, device=DEVICE)
        g = torch.Generator(DEVICE).manual_seed(SEED)
        upsampled = upsample(stage_2, part0_images.to(DEVICE, DTYPE), part0_embeds, uncond.expand_as(part0_embeds),
                             num_inference_steps=20 if STRIDE == 30 else 1, generator=g)
        show_grid(upsampled, titles=[fill(p, 24) for p in PART0_PROMPTS], suptitle="stage 2: 256×256")
    '''),
]
