"""Part B notebook, section 4 (optional, the FA24 variant): DDPM, time- then class-conditioned.

Cells of ``course.notebooks.partB``; solutions lifted from ``reference.ddpm``. Time convention of this
section: t = 0 is clean, t = T is pure noise (T = 300), the UNet is fed t/T.
"""

from __future__ import annotations

from course.notebooks.cells import Code, Markdown, graded
from reference import ddpm

SCHEDULE = [
    Markdown(r"""
## 4. (Optional) The DDPM variant

The Fall 2024 edition of this assignment trained the same UNets as *denoising diffusion probabilistic
models*. **The time runs as in Part A again: $t = 0$ is a clean digit and $t = T$ pure noise**, with
$T = 300$ steps, and the UNet is fed the normalised time $t/T$. The UNet predicts the *noise*
$\varepsilon$, not a velocity, and is conditioned additively on time (`conditioning="ddpm"`:
`unflatten + t1`, `up1 + t2`).

**The schedule.** $\beta_1, \dots, \beta_T$ linearly spaced from $10^{-4}$ to $0.02$,
$\alpha_t = 1 - \beta_t$ and $\bar\alpha_t = \prod_{s \le t} \alpha_s$. Python arrays start at 0, so
$\beta_t$ is `betas[t - 1]`.
"""),
    *graded(ddpm.ddpm_schedule),
    Code('''
# Provided: the schedule's coefficients recomputed in float64 (1 − ᾱ_t near t = 1 loses digits in
# float32). _schedule64(schedule, num_ts) returns dict(betas, alphas, alpha_bars), float64 on the CPU.
from fwd_kit.schedules import _schedule64
'''),
    Markdown(r"""
**Training (Algorithm B.1).** For a batch of clean digits $x_0$: draw $t$ uniformly from
$\{1, \dots, T\}$, then $\varepsilon \sim \mathcal N(0, I)$, noise
$x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1 - \bar\alpha_t}\,\varepsilon$ and return
$\lVert \varepsilon - \varepsilon_\theta(x_t, t/T)\rVert^2$ (mean).
"""),
    *graded(ddpm.ddpm_forward),
    Markdown(r"""
**One sampling step (Algorithm B.2).** From $x_t$ and the predicted noise $\hat\varepsilon$, estimate
the clean digit and step to $x_{t-1}$ ($\bar\alpha_0 = 1$; $z \sim \mathcal N(0, I)$ for $t > 1$, no
noise at $t = 1$, passed as `z=None`):

$$\hat x_0 = \frac{x_t - \sqrt{1 - \bar\alpha_t}\,\hat\varepsilon}{\sqrt{\bar\alpha_t}}, \qquad
x_{t-1} = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1 - \bar\alpha_t}\,\hat x_0
        + \frac{\sqrt{\alpha_t}\,(1 - \bar\alpha_{t-1})}{1 - \bar\alpha_t}\,x_t + \sqrt{\beta_t}\,z .$$

Then the sampler: $x_T \sim \mathcal N(0, I)$, and for $t = T, \dots, 1$ draw $z$ (when $t > 1$),
predict $\hat\varepsilon = \varepsilon_\theta(x_t, t/T)$ and take the step. Draw $x_T$ first, then
each $z$ in turn, from the generator. Write `ddpm_step` first (it has its own check), then the sampler,
which calls it. With `return_trajectory=True` the sampler also returns the $T + 1$ iterates
($x_T$ first), for animations.
"""),
    *graded(ddpm.ddpm_step),
    *graded(ddpm.ddpm_sample),
    Markdown(r"""
Course settings: $D = 64$, batch 128, Adam with learning rate $10^{-3}$, `ExponentialLR`
($\gamma = 0.1^{1/20}$) each epoch, 20 epochs; samples after epochs 5 and 20. Set `DDPM_SECTION = False`
in the first cell to skip this training.
"""),
    Code('''
tdd_cfg = course_config("time-ddpm")
tdd_schedule = {k: v.to(DEVICE) for k, v in ddpm_schedule(tdd_cfg.beta1, tdd_cfg.beta2, tdd_cfg.num_ts).items()}


def show_time_ddpm(epoch, model):
    if epoch in figure_epochs(tdd_cfg):
        samples = ddpm_sample(model, tdd_schedule, tdd_cfg.num_samples, (28, 28), tdd_cfg.num_ts, generator(9))
        show(digit_grid(samples, 10, title=f"time-conditioned DDPM, epoch {epoch}"), f"time_ddpm_epoch{epoch}",
             note("B4-time-samples", key=f"epoch-{epoch}", epoch=epoch, num_ts=tdd_cfg.num_ts, seed=SEED))


if DDPM_SECTION:
    torch.manual_seed(SEED)
    tdd_unet = TimeConditionalUNet(1, tdd_cfg.num_hiddens, conditioning="ddpm").to(DEVICE)
    tdd_losses, tdd_steps = train(
        tdd_unet, lambda m, x, y, g: ddpm_forward(m, tdd_schedule, x, tdd_cfg.num_ts, g), tdd_cfg, show_time_ddpm)
    show(loss_curve(tdd_losses, tdd_steps, "time-conditioned DDPM"), "time_ddpm_loss",
         note("B4-time-loss", epochs=tdd_cfg.epochs, batch_size=tdd_cfg.batch_size, lr=tdd_cfg.lr))
'''),
]

CLASS = [
    Markdown(r"""
### Class-conditioned DDPM with guidance
The same `ClassConditionalUNet`, trained with the class dropped to the zero vector with probability
0.1 (Algorithm B.3: drop, then $t$, then $\varepsilon$), and sampled with classifier-free guidance
(Algorithm B.4): $\hat\varepsilon = \varepsilon_u + \gamma(\varepsilon_c - \varepsilon_u)$ with
$\varepsilon_c = \varepsilon_\theta(x_t, c, t/T)$, $\varepsilon_u = \varepsilon_\theta(x_t, 0, t/T)$ and
$\gamma = 5$, then the same step as above.
"""),
    *graded(ddpm.class_ddpm_forward),
    *graded(ddpm.class_ddpm_sample),
    Code('''
cdd_cfg = course_config("class-ddpm")
cdd_schedule = {k: v.to(DEVICE) for k, v in ddpm_schedule(cdd_cfg.beta1, cdd_cfg.beta2, cdd_cfg.num_ts).items()}
cdd_labels = torch.arange(10, device=DEVICE).repeat(cdd_cfg.samples_per_digit)


def show_class_ddpm(epoch, model):
    if epoch in figure_epochs(cdd_cfg):
        samples = class_ddpm_sample(model, cdd_schedule, cdd_labels, (28, 28), cdd_cfg.num_ts, cdd_cfg.guidance,
                                    generator(10))
        show(digit_grid(samples, 10, col_labels=[str(d) for d in range(10)],
                        title=f"class-conditioned DDPM, epoch {epoch}, γ = {cdd_cfg.guidance:g}"),
             f"class_ddpm_epoch{epoch}", note("B4-class-grid", key=f"epoch-{epoch}", epoch=epoch,
                                              guidance=cdd_cfg.guidance, samples_per_digit=cdd_cfg.samples_per_digit,
                                              num_ts=cdd_cfg.num_ts, seed=SEED))


if DDPM_SECTION:
    torch.manual_seed(SEED)
    cdd_unet = ClassConditionalUNet(1, 10, cdd_cfg.num_hiddens, conditioning="ddpm").to(DEVICE)
    cdd_losses, cdd_steps = train(
        cdd_unet, lambda m, x, y, g: class_ddpm_forward(m, cdd_schedule, x, y, cdd_cfg.p_uncond, cdd_cfg.num_ts, g),
        cdd_cfg, show_class_ddpm)
    show(loss_curve(cdd_losses, cdd_steps, "class-conditioned DDPM"), "class_ddpm_loss",
         note("B4-class-loss", epochs=cdd_cfg.epochs, batch_size=cdd_cfg.batch_size, lr=cdd_cfg.lr))
'''),
    Markdown(r"""
## Bells & whistles
Ideas: a better time-only model (longer training, a wider or deeper UNet, an EMA of the weights) with
a clearer visualisation; sampling GIFs (`write_gif` is imported above); rectified flow; another
dataset (Fashion-MNIST, SVHN, CIFAR-10). Add your own cells below.
"""),
]

DDPM_CELLS = SCHEDULE + CLASS
