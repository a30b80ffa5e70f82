"""Part B notebook, section 3: flow matching (FA25) — time- then class-conditioned, CFG, no scheduler.

Cells of ``course.notebooks.partB``; solutions lifted from ``reference.unet`` and
``reference.flow_matching``. Time convention of this section: t = 0 is noise, t = 1 is data.
"""

from __future__ import annotations

from course.notebooks.cells import Code, Markdown, graded, written
from reference import flow_matching, unet

TIME = [
    Markdown(r"""
## 3. Flow matching

A one-step denoiser cannot create digits from nothing. Flow matching learns, instead, a *velocity
field* that carries noise to data a little at a time. **Careful: the time runs the other way than in
Part A and DDPM — here $t = 0$ is pure noise and $t = 1$ is a clean digit.**

Take noise $x_0 \sim \mathcal N(0, I)$ and a digit $x_1$, and join them by a straight line:

$$x_t = (1 - t)\,x_0 + t\,x_1, \qquad t \in [0, 1].$$

Along that line the velocity is constant, $u = \frac{d x_t}{dt} = x_1 - x_0$. A UNet
$u_\theta(x_t, t)$ learns to predict it from the point $x_t$ and the time $t$ alone:

$$L = \mathbb E_{x_0,\,x_1,\,t \sim U[0,1]}\ \lVert (x_1 - x_0) - u_\theta(x_t, t)\rVert^2 .$$

Write `interpolate` (one $t$ per image, broadcast over the pixels) and `flow_target`.
"""),
    *graded(flow_matching.interpolate),
    *graded(flow_matching.flow_target),
    Markdown(r"""
### Conditioning the UNet on time
Two `FCBlock`s embed the time $t$, given as an (N, 1) column (`time_column(t, N, x)` turns a number,
an (N,) or an (N, 1) tensor into one): `t1 = fc1_t(t)` has $2D$ features and `t2 = fc2_t(t)` has $D$.
Reshape them to (N, C, 1, 1) and **multiply** them into the network at the two injection points:
`unflatten = unflatten * t1` and `up1 = up1 * t2`. The reference also supports the additive DDPM
variant (`conditioning="ddpm"`: `unflatten + t1`, `up1 + t2`), used in the optional section 4.
"""),
    *graded(unet.TimeConditionalUNet),
    Markdown(r"""
### Training and sampling
**Training (Algorithm B.1)**, for a batch of digits $x_1$: draw $t \sim U[0, 1]$ per image, then
$x_0 \sim \mathcal N(0, I)$, form $x_t$ and return the loss above. Draw in that order, from the given
generator, on the UNet's device and dtype.

**Sampling (Algorithm B.2)** integrates $\frac{dx}{dt} = u_\theta(x, t)$ from $t = 0$ to $1$ with
$T$ = `num_ts` Euler steps: start from $x \sim \mathcal N(0, I)$ and, for $i = 0, \dots, T-1$ with
$t = i/T$, update $x \leftarrow x + \frac1T\,u_\theta(x, t)$. Run the UNet in eval mode without
gradients (`with eval_mode(unet), torch.no_grad():`) so BatchNorm uses its running statistics.
With `return_trajectory=True`, also return the list of the $T + 1$ iterates (for animations).
"""),
    *graded(flow_matching.time_fm_forward),
    *graded(flow_matching.time_fm_sample),
    Markdown(r"""
Course settings: $D = 64$, batch 64, Adam with learning rate $10^{-2}$ decayed by
`ExponentialLR(γ = 0.1^{1/10})` each epoch, 10 epochs, 50 Euler steps. Samples after epochs 1, 5
and 10: expect legible but imperfect digits at the end.
"""),
    Code('''
tfm_cfg = course_config("time-fm")


def show_time_fm(epoch, model):
    if epoch in figure_epochs(tfm_cfg):
        samples = time_fm_sample(model, tfm_cfg.num_samples, (28, 28), tfm_cfg.num_ts, generator(6))
        show(digit_grid(samples, 10, title=f"time-conditioned flow matching, epoch {epoch}"), f"time_fm_epoch{epoch}",
             note("B2.3-time-samples", key=f"epoch-{epoch}", epoch=epoch, num_ts=tfm_cfg.num_ts, seed=SEED))


torch.manual_seed(SEED)
tfm_unet = TimeConditionalUNet(1, tfm_cfg.num_hiddens, conditioning="fm").to(DEVICE)
tfm_losses, tfm_steps = train(tfm_unet, lambda m, x, y, g: time_fm_forward(m, x, g), tfm_cfg, show_time_fm)
show(loss_curve(tfm_losses, tfm_steps, "time-conditioned flow matching"), "time_fm_loss",
     note("B2.2-time-loss", epochs=tfm_cfg.epochs, batch_size=tfm_cfg.batch_size, lr=tfm_cfg.lr,
          use_scheduler=tfm_cfg.use_scheduler))
'''),
]

CLASS = [
    Markdown(r"""
### Adding the class
To choose which digit to draw, condition on the class too. The class is a one-hot vector $c$ of 10
numbers (`one_hot(labels)` is provided); the zero vector means "no class". Two more `FCBlock`s,
`fc1_c` ($10 \to 2D$) and `fc2_c` ($10 \to D$), embed it, and the class **scales** while the time
**shifts**:

`unflatten = c1 * unflatten + t1`, &nbsp; `up1 = c2 * up1 + t2`.

`forward(x, c, t, mask=None)`: when a `mask` (N,) is given, a 0 drops that sample's class
(`c = c * mask`).
"""),
    *graded(unet.ClassConditionalUNet),
    Markdown(r"""
**Training (Algorithm B.3)** is Algorithm B.1 with the class: $c$ = one-hot labels, each row set to
the zero vector with probability $p_\text{uncond} = 0.1$ (so that the same network also learns the
unconditional flow; `drop_classes(c, p_uncond, generator)` is provided), then $t$, then $x_0$.

**Sampling with classifier-free guidance (Algorithm B.4)**: at every Euler step compute the
conditional velocity $u_c = u_\theta(x, c, t)$ and the unconditional one $u_u = u_\theta(x, 0, t)$,
and move along

$$u = u_u + \gamma\,(u_c - u_u), \qquad x \leftarrow x + \tfrac1T\,u,$$

with guidance scale $\gamma = 5$. ($\gamma = 1$ is the plain conditional flow; one UNet call on a
batch of $2N$ does both branches.)
"""),
    *graded(flow_matching.class_fm_forward),
    *graded(flow_matching.class_fm_sample),
    Markdown(r"""
Same settings as the time-only model (10 epochs); every figure shows 4 samples of each digit, drawn
with $\gamma = 5$.
"""),
    Code('''
cfm_cfg = course_config("class-fm")
grid_labels = torch.arange(10, device=DEVICE).repeat(cfm_cfg.samples_per_digit)  # 0…9, 0…9, …
digit_names = [str(d) for d in range(10)]


def show_class_fm(epoch, model, cfg=cfm_cfg, name="class_fm", deliverable="B2.6-class-grid"):
    if epoch in figure_epochs(cfg):
        samples = class_fm_sample(model, grid_labels, (28, 28), cfg.num_ts, cfg.guidance, generator(7))
        show(digit_grid(samples, 10, col_labels=digit_names, title=f"{name}, epoch {epoch}, γ = {cfg.guidance:g}"),
             f"{name}_epoch{epoch}", note(deliverable, key=f"epoch-{epoch}", epoch=epoch, guidance=cfg.guidance,
                                          samples_per_digit=cfg.samples_per_digit, num_ts=cfg.num_ts, seed=SEED))


torch.manual_seed(SEED)
cfm_unet = ClassConditionalUNet(1, 10, cfm_cfg.num_hiddens, conditioning="fm").to(DEVICE)
cfm_losses, cfm_steps = train(cfm_unet, lambda m, x, y, g: class_fm_forward(m, x, y, cfm_cfg.p_uncond, g),
                              cfm_cfg, show_class_fm)
show(loss_curve(cfm_losses, cfm_steps, "class-conditioned flow matching"), "class_fm_loss",
     note("B2.5-class-loss", epochs=cfm_cfg.epochs, batch_size=cfm_cfg.batch_size, lr=cfm_cfg.lr,
          p_uncond=cfm_cfg.p_uncond, use_scheduler=cfm_cfg.use_scheduler))
'''),
    Markdown(r"""
### What does guidance do?
The same starting noise, sampled with $\gamma = 0$ (unconditional), $1$ (conditional), $5$ and $10$.
The GIF in `partB_figures/class_fm_trajectory.gif` shows the $\gamma = 5$ samples forming.
"""),
    Code('''
scales = [0.0, 1.0, 5.0, 10.0]
rows = [class_fm_sample(cfm_unet, torch.arange(10, device=DEVICE), (28, 28), cfm_cfg.num_ts, s, generator(8))
        for s in scales]
show(digit_grid(torch.cat(rows), 10, [f"γ = {s:g}" for s in scales], digit_names, "classifier-free guidance"),
     "class_fm_guidance", note("B2.6-guidance", guidance=scales, seed=SEED))
samples, frames = class_fm_sample(cfm_unet, grid_labels, (28, 28), cfm_cfg.num_ts, cfm_cfg.guidance, generator(7),
                                  return_trajectory=True)
print("animation:", write_gif(frames, OUT / "class_fm_trajectory.gif", nrow=10))
'''),
    written("cfg_effect", answer=r"""
With $\gamma = 0$ the flow ignores the class: the samples are random, often malformed digits. With
$\gamma = 1$ they follow the conditional flow and mostly show the requested digit, but some are weak
or ambiguous. $\gamma > 1$ extrapolates past the conditional velocity, away from the unconditional
one, i.e. it amplifies exactly what distinguishes the requested class from digits in general: the
samples become cleaner, bolder and unmistakable, at the price of diversity (they look alike) and, for
large $\gamma$ such as 10, oversaturated, thick strokes.
"""),
]

NO_SCHEDULER = [
    Markdown(r"""
### Can we get rid of the learning-rate scheduler?
`ExponentialLR` divides the learning rate by 10 over the training. Retrain the class-conditioned model
**without** it and change something else so that the samples stay about as good — edit
`no_scheduler_changes` below (for example another constant learning rate, more epochs, or both), then
explain your choice.
"""),
    Code('''
no_scheduler_changes = dict(use_scheduler=False, lr=1e-3)  # your compensation for the missing decay
ns_cfg = course_config("class-fm", **no_scheduler_changes)
torch.manual_seed(SEED)
ns_unet = ClassConditionalUNet(1, 10, ns_cfg.num_hiddens, conditioning="fm").to(DEVICE)
ns_losses, ns_steps = train(ns_unet, lambda m, x, y, g: class_fm_forward(m, x, y, ns_cfg.p_uncond, g), ns_cfg,
                            lambda epoch, model: show_class_fm(epoch, model, ns_cfg, "class_fm_no_scheduler",
                                                               "B2.6-no-scheduler-grid"))
show(loss_curve(ns_losses, ns_steps, f"class-conditioned flow matching without scheduler, lr = {ns_cfg.lr:g}"),
     "class_fm_no_scheduler_loss", note("B2.6-no-scheduler-loss", epochs=ns_cfg.epochs, lr=ns_cfg.lr,
                                        use_scheduler=ns_cfg.use_scheduler))
'''),
    written("no_scheduler", answer=r"""
A constant learning rate of $10^{-3}$ instead of $10^{-2}$ decayed towards $10^{-3}$. The scheduler's
job is to take large steps early (fast progress) and small steps late, so that the weights settle
instead of jittering around a minimum with the noise of the stochastic gradients. A constant rate at
the low end keeps the settled late phase throughout: expect a slightly higher loss in the first epoch
and a similar final loss and sample quality after 10 epochs (compare the two loss curves and sample
grids). Training longer, or averaging the weights (EMA), are other ways to compensate.
"""),
]

FM_CELLS = TIME + CLASS + NO_SCHEDULER
