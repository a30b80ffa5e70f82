"""The one trusted implementation of every stage of the course.

Vocabulary, used everywhere in this package (Greek letters only in docstrings):

    x0, xt       a clean image and its noised version at time t
    eps          Gaussian noise ε ~ N(0, I), or a model's estimate ε̂ of it
    alpha_bar    ᾱ_t, the cumulative product of (1 − β) — ``scheduler.alphas_cumprod`` in Part A
    t            an integer timestep (Part A, DDPM) or a float time in [0, 1] (flow matching)
    t_prev       the next, less noisy timestep of a strided list (t′ in the course text)
    i_start      an index into a list of timesteps (not a timestep)
    u            a flow-matching velocity (x1 − x0)

Time conventions (each module repeats the one it uses):

    Part A (DeepFloyd IF) and DDPM: t = 0 is clean, t = T − 1 (999 or 299) is pure noise.
    Flow matching:                  t = 0 is noise, t = 1 is data — the opposite.

Ranges: Part A images are float tensors in [-1, 1], shape (B, 3, H, W); Part B digits are in [0, 1],
shape (B, 1, 28, 28).

Modules:
    Part A — ``denoise`` (forward process, one-step, strided iterative denoising, CFG), ``editing``
    (SDEdit, inpainting), ``illusions`` (visual anagrams, hybrids).
    Part B — ``unet``, ``denoiser``, ``flow_matching``, ``ddpm``, ``training``, ``classifier``, ``figures``.

The helpers these use live in the student kit, under one name each: ``fwd_kit.images`` (load/show/save),
``fwd_kit.loading`` (DeepFloyd, prompt embeddings), ``fwd_kit.tiny`` (offline stand-ins),
``fwd_kit.upsample`` (stage 2), ``fwd_kit.data`` (MNIST), ``fwd_kit.digit_model``, ``fwd_kit.validate``
(input checks). Their old names here (``reference.loading``, …) raise an ImportError that names the new
module (:mod:`fwd_kit.moved`).
"""

from fwd_kit import moved

moved.install()
