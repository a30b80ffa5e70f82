"""The proof that the grader grades (``course grade``): whole notebooks through :func:`grade_submission`.

1. The solution notebooks score full marks: every test passes (Part A with its semantic tests too, when
   :mod:`autograder.semantic` has its case tables).
2. The released student notebooks score zero, and every test says the function is not implemented yet.
3. Typical mistakes, written into the solution's answer cells, lose points on exactly the tests they
   should: the mistaken function's own public and hidden tests, once. Every graded function that calls
   it (``submission_kit.CALLS``) is judged again against the course's composite over the same helpers,
   keeps its points and names the helper to look at (``autograder.charges``); a helper that always
   raises costs its callers their tests too, each naming it. Several mistakes in functions that do not depend
   on each other share one notebook, graded once; every graded function has a mistake somewhere. The
   mistakes include the behaviours a docstring promises (a ValueError, start = 0, intermediates every 5th
   step, the callbacks of every loop, a trajectory), in-place writes into an input, a dtype or a device
   hard-coded inside a function and a hybrid variance guided like the noise; a hidden test's message shows
   none of the text the student's code raised or printed.
4. Correct alternatives (loops for vectorised code, other torch calls, equivalent formulas, nn.Sequential
   with the same state_dict names, x̂0 clamped to [-1, 1], helpers called in another order) score full marks.

Each notebook is graded once per module (``graded``), on public and hidden tests; the kit writes the
notebooks into a temporary folder. Where the grader mis-grades a mistake, the case is listed in
``KNOWN_DEFECTS`` with what happens and marked xfail (strict), so that a fix shows as an XPASS.
"""

from __future__ import annotations

import pytest
from submission_kit import ALTERNATIVES, CALLS, RELEASE, SOLUTION, Edit, Submission, broken_by, defined_in_answers

from autograder.catalogue import load_assignment
from autograder.grade import grade_submission
from autograder.rubric import rubric
from fwd_kit import checks as public

PUBLIC_HIDDEN = ("public", "hidden")
STUDENT_TEXT, STUDENT_PRINT = "text-of-the-students-own-7", "printed-by-the-student-7"  # a mistake in group B5
CHECKED = {"partA": set(public.PART_A), "partB": set(public.PART_B)}


def semantic_ready() -> bool:
    """Whether the semantic checks can run: the module exists and its case tables are filled in."""
    try:
        from autograder import semantic
    except ImportError:
        return False
    return all(getattr(semantic, table, ()) for table in ("CFG_CASES", "ANAGRAM_CASES", "HYBRID_CASES"))


# ---------------------------------------------------------------------------------------------------
# The mistakes: one line of a solution cell changed. Mistakes of a group share one notebook, so no
# mistaken function of a group calls another (test_groups_hold_independent_mistakes).

MISTAKES = {
    "A1": ("partA", (
        Edit("forward", "a missing square root on the noise's coefficient",
             "(1 - alpha_bar) ** 0.5 * noise", "(1 - alpha_bar) * noise",
             says="Does forward compute x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·ε"),
        Edit("strided_timesteps", "off by one: the list stops before t = 0",
             "range(start, -1, -stride)", "range(start, 0, -stride)", says="down to and including 0"),
        Edit("rot90_ccw", "the wrong direction", "k=1, dims=(2, 3)", "k=-1, dims=(2, 3)",
             says="Your result is a clockwise quarter-turn"),
        Edit("highpass", "a sign: the blur minus the image", "return x - lowpass(x, kernel_size, sigma)",
             "return lowpass(x, kernel_size, sigma) - x"),
        Edit("iterative_denoise_cfg", "a hard-coded guidance scale",
             "cfg_noise(unet, xt, t, prompt_embeds, uncond_prompt_embeds, scale)",
             "cfg_noise(unet, xt, t, prompt_embeds, uncond_prompt_embeds, 7.0)"),
        Edit("iterative_denoise", "the callback given t instead of t_prev", "callback(i, t_prev, xt)",
             "callback(i, t, xt)", says="callback(i, t_prev, x_t′)"),
    )),
    "A2": ("partA", (
        Edit("estimate_x0", "a sign: x_t + sqrt(1 − ᾱ_t)·ε̂", "(xt - ((1 - alpha_bar) ** 0.5)",
             "(xt + ((1 - alpha_bar) ** 0.5)", says="Does estimate_x0 invert the forward process"),
        Edit("denoise_step_mean", "the scheduler's one-step α_t instead of the strided ᾱ_t/ᾱ_{t′}",
             "alpha = alpha_bar / alpha_bar_prev", "alpha = alphas_cumprod[t] / alphas_cumprod[t - 1]",
             says="use the strided α_t"),
        Edit("cfg_noise", "the two halves of the batch swapped", "eps_uncond, eps_cond = eps.chunk(2)",
             "eps_cond, eps_uncond = eps.chunk(2)",
             says="Does cfg_noise combine the estimates as ε_u + γ·(ε_c − ε_u)"),
        Edit("flip_upside_down", "the wrong axis (a mirror)", "torch.flip(x, dims=[2])", "torch.flip(x, dims=[3])",
             says="Your result is a left-right mirror"),
        Edit("negate", "the inversion of [0, 1] images", "return -x", "return 1 - x", says="Your result is 1 − x"),
        Edit("lowpass", "the variance σ² passed as the standard deviation", "sigma=sigma)", "sigma=sigma**2)",
             says="Does lowpass blur x with a Gaussian of the given kernel_size and sigma"),
        Edit("forward", "x0 overwritten in place",
             "return alpha_bar**0.5 * x0 + (1 - alpha_bar) ** 0.5 * noise.to(x0.device, x0.dtype)",
             "return x0.mul_(alpha_bar**0.5).add_((1 - alpha_bar) ** 0.5 * noise.to(x0.device, x0.dtype))",
             says="Does forward leave its inputs unchanged?"),
    )),
    "A3": ("partA", (
        Edit("one_step_denoise", "the wrong output channels: ε̂ taken from the variance half",
             "eps, _ = predict_noise(unet, xt, t, prompt_embeds)", "_, eps = predict_noise(unet, xt, t, prompt_embeds)",
             says="Do you take ε̂ from the UNet's first 3 output channels?"),
        Edit("iterative_denoise", "off by one: the loop stops a step early",
             "for i in range(i_start, len(timesteps) - 1):", "for i in range(i_start, len(timesteps) - 2):",
             says="Does iterative_denoise take one step per timestep"),
        Edit("sdedit", "off by one: x_orig noised to the previous timestep",
             "forward(x_orig, timesteps[i_start], scheduler.alphas_cumprod", "forward(x_orig, timesteps[i_start - 1], "
             "scheduler.alphas_cumprod", says="Does sdedit first noise x_orig to t = timesteps[i_start]"),
        Edit("inpaint", "the mask inverted", "xt = mask * xt + (1 - mask) * forward(",
             "xt = (1 - mask) * xt + mask * forward(", says="Does inpaint keep the original where mask = 0"),
        Edit("visual_anagram", "the flip not undone", "inverse_fn(eps_2_viewed)", "eps_2_viewed",
             says="map the second prompt's estimate back with the view's inverse"),
        Edit("make_hybrids", "the prompts' frequencies swapped",
             "lowpass(eps_low, kernel_size, sigma) + highpass(eps_high, kernel_size, sigma)",
             "lowpass(eps_high, kernel_size, sigma) + highpass(eps_low, kernel_size, sigma)",
             says="Your result matches them swapped"),
        Edit("rot90_cw", "the same direction as rot90_ccw", "k=-1", "k=1",
             says="Your result is a counter-clockwise quarter-turn"),
        Edit("strided_timesteps", "no ValueError for a start that is not a multiple of stride",
             "if stride <= 0 or start < 0 or start % stride:", "if stride <= 0 or start < 0:",
             says="Does strided_timesteps raise a ValueError when start is not a multiple of stride"),
    )),
    "A4": ("partA", (
        Edit("denoise_step_mean", "no ValueError when t_prev = t", "if t_prev >= t:", "if t_prev > t:",
             says="Does denoise_step_mean raise a ValueError when t_prev is not smaller than t",
             spares=("iterative_denoise", "iterative_denoise_cfg", "sdedit")),  # they never pass t_prev = t
        Edit("inpaint", "the callback never called", "            callback(i, t_prev, xt)\n",
             "            pass  # the callback is never called\n",
             says="Does inpaint call callback(i, t_prev, x_t′)"),
        Edit("visual_anagram", "the callback never called", "            callback(i, t_prev, xt)\n",
             "            pass  # the callback is never called\n",
             says="Does visual_anagram call callback(i, t_prev, x_t′)"),
        Edit("make_hybrids", "the callback never called", "            callback(i, t_prev, xt)\n",
             "            pass  # the callback is never called\n",
             says="Does make_hybrids call callback(i, t_prev, x_t′)"),
        Edit("strided_timesteps", "start = 0 refused (the docstring allows it)",
             "if stride <= 0 or start < 0 or start % stride:", "if stride <= 0 or start <= 0 or start % stride:",
             says="Does strided_timesteps accept start = 0"),
    )),
    "A5": ("partA", (
        Edit("iterative_denoise_cfg", "a frame at every step instead of every 5th",
             "if return_intermediates and (i - i_start) % 5 == 0:", "if return_intermediates:",
             says="for every 5th step", spares=("sdedit",)),  # sdedit asks for no frames
        Edit("iterative_denoise", "a frame at every 6th step instead of every 5th",
             "if return_intermediates and (i - i_start) % 5 == 0:",
             "if return_intermediates and (i - i_start) % 6 == 0:",
             says="for every 5th step"),
        Edit("make_hybrids", "the variance guided like the noise (γ applied to the variance channels too)",
             "        _, variance_low, variance_high = variance.chunk(3)\n",
             "        variance_uncond, variance_low, variance_high = variance.chunk(3)\n"
             "        variance_low = variance_uncond + scale * (variance_low - variance_uncond)\n"
             "        variance_high = variance_uncond + scale * (variance_high - variance_uncond)\n",
             says="guided like the noise"),
        Edit("forward", "the noise moved to the CPU (a hard-coded device)", "noise.to(x0.device, x0.dtype)",
             'noise.to("cpu", x0.dtype)', says="Follow the device of the inputs/model"),
    )),
    "B1": ("partB", (
        Edit("Conv", "the wrong activation", "self.act = nn.GELU()", "self.act = nn.ReLU()",
             says="Does Conv compute"),
        Edit("Flatten", "the wrong pooling layer", "self.pool = nn.AvgPool2d(7)", "self.pool = nn.MaxPool2d(7)"),
        Edit("FCBlock", "the activation left out", "return self.fc2(self.act(self.fc1(x)))",
             "return self.fc2(self.fc1(x))"),
        Edit("add_noise", "σ² instead of σ", "return x + sigma * noise", "return x + sigma**2 * noise",
             says="Does add_noise return z = x + σ·ε?"),
        Edit("interpolate", "x0 and x1 swapped", "return (1 - t) * x0 + t * x1", "return (1 - t) * x1 + t * x0",
             says="Your path runs the other way"),
        Edit("ddpm_step", "a missing square root on β_t", "mean + math.sqrt(beta) * z", "mean + beta * z",
             says="Does ddpm_step compute"),
        Edit("time_fm_sample", "float32 noise whatever the UNet's dtype",
             "x = torch.randn(shape, generator=generator, device=device, dtype=dtype)",
             "x = torch.randn(shape, generator=generator, device=device)",
             says="Does time_fm_sample follow the UNet's dtype and device"),
        Edit("class_fm_sample", "guidance that starts from the conditional estimate",
             "u = u_u + guidance_scale * (u_c - u_u)", "u = u_c + guidance_scale * (u_u - u_c)",
             says="match guidance that starts from the conditional one"),
        Edit("pure_noise_loss", "noise added to x instead of pure noise", "F.mse_loss(unet(eps), x)",
             "F.mse_loss(unet(x + eps), x)", says="Is the UNet's input pure noise"),
    )),
    "B2": ("partB", (
        Edit("DownConv", "the wrong stride", "kernel_size=3, stride=2, padding=1", "kernel_size=3, stride=1, padding=1",
             says="to shape"),
        Edit("UpConv", "the wrong kernel size", "kernel_size=4, stride=2, padding=1",
             "kernel_size=3, stride=2, padding=1"),
        Edit("Unflatten", "BatchNorm left out of forward", "return self.act(self.norm(self.conv(x)))",
             "return self.act(self.conv(x))"),
        Edit("Concat", "the inputs in the wrong order", "torch.cat([x, y], dim=1)", "torch.cat([y, x], dim=1)"),
        Edit("ConvBlock", "the second layer skipped", "return self.conv2(self.conv1(x))", "return self.conv1(x)"),
        Edit("flow_target", "a sign: x0 − x1", "return x1 - x0", "return x0 - x1",
             says="Is the target the velocity of the straight path"),
        Edit("ddpm_schedule", "ᾱ without the cumulative product", "alpha_bars = torch.cumprod(alphas, dim=0)",
             "alpha_bars = alphas", says="Is ᾱ_t the cumulative product of the alphas"),
        Edit("ddpm_forward", "off by one: t drawn from 0 … T − 1", "torch.randint(1, num_ts + 1,",
             "torch.randint(0, num_ts,", says="draw t uniformly from {1, …, T}"),
        Edit("time_fm_sample", "eval mode forgotten", "with eval_mode(unet), torch.no_grad():",
             "with torch.no_grad():", says="Is the UNet in eval mode"),
        Edit("add_noise", "per-image σ (N,) not reshaped to (N, 1, 1, 1)",
             "sigma = sigma.reshape(-1, *([1] * (x.ndim - 1)))", "sigma = sigma  # (N,) against (N, C, H, W)",
             says="one σ per image", spares=("denoiser_loss",)),  # denoiser_loss passes a float σ
        Edit("class_ddpm_sample", "the trajectory without the starting noise", "    trajectory = [x]\n",
             "    trajectory = []\n", says="num_ts + 1 iterates"),
    )),
    "B3": ("partB", (
        Edit("DownBlock", "the ConvBlock skipped", "return self.block(self.down(x))", "return self.down(x)"),
        Edit("UpBlock", "the wrong layer: a DownConv", "self.up = UpConv(in_channels, out_channels)",
             "self.up = DownConv(in_channels, out_channels)"),
        Edit("denoiser_loss", "a hard-coded σ", "z = add_noise(x, sigma, generator=generator)",
             "z = add_noise(x, 0.5, generator=generator)", says="σ = sigma?"),
        Edit("time_fm_forward", "t ~ N(0, 1) instead of U[0, 1]", "t = torch.rand(N,", "t = torch.randn(N,",
             says="draw t ~ U[0, 1]"),
        Edit("class_fm_forward", "the class dropout forgotten", "c = drop_classes(c, p_uncond, generator=generator)",
             "c = drop_classes(c, 0.0, generator=generator)", says="with probability p_uncond"),
        Edit("ddpm_sample", "off by one: the UNet fed (t − 1)/T", "t_in = torch.full((num_samples,), t / num_ts,",
             "t_in = torch.full((num_samples,), (t - 1) / num_ts,", says="calling the UNet at t/T"),
        Edit("class_ddpm_forward", "the noise's coefficient without its square root",
             "xt = sqrt_ab * x0 + sqrt_1m_ab * eps", "xt = sqrt_ab * x0 + sqrt_1m_ab**2 * eps",
             says="Is x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·ε"),
    )),
    "B4": ("partB", (
        Edit("UnconditionalUNet", "the wrong output channels",
             "self.head = nn.Conv2d(D, in_channels, kernel_size=3, stride=1, padding=1)",
             "self.head = nn.Conv2d(D, D, kernel_size=3, stride=1, padding=1)", says="to shape (2, 1, 28, 28)"),
        Edit("TimeConditionalUNet", "flow matching's and DDPM's injections swapped",
             'u0 = u0 * t1 if self.conditioning == "fm" else u0 + t1',
             'u0 = u0 + t1 if self.conditioning == "fm" else u0 * t1'),
        Edit("ClassConditionalUNet", "the mask inverted", "c = c * mask.reshape(N, 1).to(c.dtype)",
             "c = c * (1 - mask.reshape(N, 1).to(c.dtype))", says="with mask = [1, 0]"),
        Edit("class_ddpm_sample", "the branches of the batch swapped",
             "eps_c, eps_u = unet(torch.cat([x, x]), c_both, t_in).chunk(2)",
             "eps_u, eps_c = unet(torch.cat([x, x]), c_both, t_in).chunk(2)",
             says="match guidance that starts from the conditional one"),
        Edit("ddpm_sample", "noise added at the last step too", "if t > 1 else None", "if t > 0 else None"),
        Edit("class_fm_sample", "a hard-coded guidance scale", "u = u_u + guidance_scale * (u_c - u_u)",
             "u = u_u + 5.0 * (u_c - u_u)"),
        Edit("ddpm_forward", "α_t instead of ᾱ_t for the image's coefficient", 'sqrt_ab = s["alpha_bars"]',
             'sqrt_ab = s["alphas"]', says="the cumulative product, not α_t"),
        Edit("denoiser_loss", "the clean and the noisy digits swapped", "return F.mse_loss(unet(z), x)",
             "return F.mse_loss(unet(x), z)", says="Is the UNet's input z = x + σ·ε"),
    )),
    "B5": ("partB", (
        Edit("add_noise", "x overwritten in place", "return x + sigma * noise", "return x.add_(sigma * noise)",
             says="Does add_noise leave its inputs unchanged?"),
        Edit("flow_target", "an exception with a message of its own, after a print",
             "return x1 - x0", f'print("{STUDENT_PRINT}")\n    raise ValueError("{STUDENT_TEXT}")',
             says=STUDENT_TEXT, raises=True),
        Edit("ddpm_sample", "z drawn on the CPU inside the loop (a hard-coded device)",
             "device=device, dtype=dtype) if t > 1", 'device="cpu", dtype=dtype) if t > 1',
             says="Follow the device of the inputs/model"),
    )),
}
# (group, target) → how the grader mis-grades that mistake: its case is marked xfail (strict)
KNOWN_DEFECTS: dict = {}  # none now; the first run found three, fixed in the checks: a t range of {0, …, T − 1}
# passing check_ddpm_forward by chance, a hidden σ equal to denoiser_loss's default, no per-image σ for add_noise


def expected_failures(group: str) -> set[str]:
    """The graded names whose tests the mistakes of ``group`` must fail (and no other): the mistaken ones
    themselves, and the callers of a helper that raises; other callers keep their points (judged against the
    course's composite over the same helpers)."""
    part, edits = MISTAKES[group]
    return ({e.target for e in edits} | {c for e in edits if e.raises for c in e.breaks(part)}) & CHECKED[part]


def mistake_cases():
    for group, (part, edits) in MISTAKES.items():
        for edit in edits:
            marks = [pytest.mark.xfail(strict=True, reason=KNOWN_DEFECTS[group, edit.target])] \
                if (group, edit.target) in KNOWN_DEFECTS else []
            yield pytest.param(group, edit, id=f"{group}-{edit.target}: {edit.what}", marks=marks)


# ---------------------------------------------------------------------------------------------------
# The notebooks, each graded once


def submissions() -> dict:
    """key → (part, path or Submission, kinds)."""
    table = {
        "solution-partA": ("partA", SOLUTION["partA"],
                           PUBLIC_HIDDEN + (("semantic",) if semantic_ready() else ())),
        "solution-partB": ("partB", SOLUTION["partB"], PUBLIC_HIDDEN),
        "stub-partA": ("partA", RELEASE["partA"], PUBLIC_HIDDEN),
        "stub-partB": ("partB", RELEASE["partB"], PUBLIC_HIDDEN),
        "alternatives-partA": ("partA", Submission("partA", ALTERNATIVES["partA"]), PUBLIC_HIDDEN),
        "alternatives-partB": ("partB", Submission("partB", ALTERNATIVES["partB"]), PUBLIC_HIDDEN),
    }
    for group, (part, edits) in MISTAKES.items():
        table[f"mistakes-{group}"] = (part, Submission(part, edits), PUBLIC_HIDDEN)
    return table


@pytest.fixture(scope="module")
def graded(tmp_path_factory, solution_reports):
    """``graded(key)``: the report of submission ``key``. On first use every submission of the table is
    queued on two worker processes (each grading is single-threaded, so two fill the CI's two cores). The
    solutions' reports are kept for the session (``solution_reports``: tests/test_rubric.py reads them)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    table, futures = submissions(), {}
    pool = ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn"))

    def grade(key: str):
        if not futures:
            for name, (part, source, kinds) in table.items():
                path = source.write(tmp_path_factory.mktemp(name)) if isinstance(source, Submission) else source
                futures[name] = pool.submit(grade_submission, path, part=part, kinds=kinds)
        report = futures[key].result()
        if key.startswith("solution-"):
            solution_reports.setdefault(key.removeprefix("solution-"), report)
        return report

    yield grade
    pool.shutdown(cancel_futures=True)


def outcomes_of(report, target: str) -> dict:
    return {o.test.kind: o for o in report.outcomes if o.test.target == target}


def assert_every_test_ran(report, part: str, kinds=PUBLIC_HIDDEN) -> None:
    """One test per checked name and kind: a report that silently lost tests proves nothing."""
    tests = {(o.test.target, o.test.kind) for o in report.outcomes}
    assert tests >= {(name, kind) for name in CHECKED[part] for kind in kinds}, report.output


# ---------------------------------------------------------------------------------------------------
# Cheap checks of the corpus itself (no grading)


@pytest.mark.parametrize("part", ["partA", "partB"])
def test_dependency_map_matches_the_solution_notebook(part):
    assert set(CALLS[part]) == set(load_assignment(part).graded)
    assert defined_in_answers(part) == CALLS[part]


def test_every_graded_function_has_a_mistake_and_an_alternative():
    for part in ("partA", "partB"):
        mistaken = {e.target for p, edits in MISTAKES.values() if p == part for e in edits}
        assert mistaken == set(CALLS[part]), set(CALLS[part]) ^ mistaken
        assert {r.target for r in ALTERNATIVES[part]} == set(CALLS[part])


@pytest.mark.parametrize("group", list(MISTAKES))
def test_groups_hold_independent_mistakes(group):
    part, edits = MISTAKES[group]
    targets = [e.target for e in edits]
    assert len(set(targets)) == len(targets)
    for edit in edits:
        assert not (broken_by(part, edit.target) - {edit.target}) & set(targets), \
            f"{edit.target}: a function of the same group calls it"


@pytest.mark.parametrize("key", [k for k, (_, s, _) in submissions().items() if isinstance(s, Submission)])
def test_every_edit_applies_to_the_current_solution(key):
    part, submission, _ = submissions()[key]
    nb = submission.notebook()  # each change asserts that it found its text exactly once
    assert nb.cells != Submission(part).notebook().cells


# ---------------------------------------------------------------------------------------------------
# 1. The solutions score full marks


@pytest.mark.parametrize("part", ["partA", "partB"])
def test_solution_scores_full_marks(graded, part):
    report = graded(f"solution-{part}")
    assert_every_test_ran(report, part)
    problems = [f"{o.test.name}: {o.output}" for o in report.outcomes if o.status != "passed"]
    assert not problems, "\n".join(problems)
    assert report.score == report.max_score > 0
    if part == "partB" or semantic_ready():  # every test the rubric counts ran: its automatic total
        assert report.max_score == rubric(part).automatic


def test_solution_passes_the_semantic_tests(graded):
    if not semantic_ready():
        pytest.skip("autograder.semantic's case tables are not filled in yet")
    report = graded("solution-partA")
    semantic = [o for o in report.outcomes if o.test.kind == "semantic"]
    assert {o.test.target for o in semantic} == {"iterative_denoise_cfg", "visual_anagram", "make_hybrids"}
    assert all(o.status == "passed" for o in semantic), [o.output for o in semantic if o.status != "passed"]


# ---------------------------------------------------------------------------------------------------
# 2. The released notebooks score zero, each test saying what is missing


@pytest.mark.parametrize("part", ["partA", "partB"])
def test_released_stubs_score_zero(graded, part):
    report = graded(f"stub-{part}")
    assert_every_test_ran(report, part)
    assert report.score == 0 and report.max_score > 0
    for o in report.outcomes:
        assert o.status == "failed" and o.score == 0
        assert o.output.startswith(f"{o.test.target} is not implemented yet"), (o.test.name, o.output)


# ---------------------------------------------------------------------------------------------------
# 3. Mistakes lose points exactly where they should


@pytest.mark.parametrize("group, edit", list(mistake_cases()))
def test_mistake_costs_its_own_tests_once(graded, group, edit):
    """The mistaken function fails its public and hidden tests; every caller keeps its points (its check
    passes, or fails as the course's composite does, over the same helpers), and the callers whose check
    failed with the student's helper name it. A helper that raises costs its callers their tests too, each
    naming it: what they do after the call is unseen (a caller that only calls it must not be paid)."""
    part, _ = MISTAKES[group]
    report = graded(f"mistakes-{group}")
    own = outcomes_of(report, edit.target)
    assert set(own) == set(PUBLIC_HIDDEN)
    for o in own.values():
        assert o.status == "failed" and o.score == 0, f"{edit.what} in {edit.target}: {o.test.name} passed"
    assert edit.says in own["public"].output, own["public"].output
    hidden = own["hidden"].output
    assert hidden.startswith("On hidden inputs: ") and hidden.endswith("?"), hidden
    callers = (edit.breaks(part) - {edit.target}) & CHECKED[part]
    notes = []
    for caller in callers:
        for o in outcomes_of(report, caller).values():
            if edit.raises:
                assert o.status == "failed" and o.score == 0, f"{edit.what}: {o.test.name} kept its points"
                assert f"comes from your {edit.target}, not from {caller}" in o.output, o.output
                notes.append(o.test.name)
                continue
            assert o.status == "passed" and o.score == o.test.max_score, f"{edit.what}: {o.test.name}: {o.output}"
            if "look at" in o.output:
                assert edit.target in o.output.split("look at", 1)[1], o.output
                notes.append(o.test.name)
    assert not callers or notes, f"no caller of {edit.target} names it: {sorted(callers)}"


@pytest.mark.parametrize("group", list(MISTAKES))
def test_mistakes_break_no_other_test(graded, group):
    """Every test outside the group's expected set passes with full points; every failed test scores 0."""
    part, _ = MISTAKES[group]
    report = graded(f"mistakes-{group}")
    assert_every_test_ran(report, part)
    expected = expected_failures(group)
    unexpected = [f"{o.test.name}: {o.output}" for o in report.outcomes
                  if o.status != "passed" and o.test.target not in expected]
    assert not unexpected, "\n".join(unexpected)
    for o in report.outcomes:
        assert o.score == (o.test.max_score if o.status == "passed" else 0)
    assert report.score < report.max_score


def test_a_wrong_helper_costs_only_its_own_points(graded):
    """A wrong estimate_x0 (group A2) used to cost every loop of Part A too; now only its two tests (and the
    other mistakes' of its group), each caller carrying one labelled line that names it."""
    report = graded("mistakes-A2")
    lost = {o.test.target for o in report.outcomes if o.score < o.test.max_score}
    assert lost == expected_failures("A2")
    named = {o.test.target for o in report.outcomes if "look at" in o.output
             and "estimate_x0" in o.output.split("look at", 1)[1]}
    assert {"one_step_denoise", "iterative_denoise", "iterative_denoise_cfg", "inpaint"} <= named, named


def test_hidden_messages_show_no_text_of_the_students_code(graded):
    """flow_target (group B5) prints and raises a ValueError with its own message: the public test shows the
    message, the hidden test only the exception's type and a question."""
    own = outcomes_of(graded("mistakes-B5"), "flow_target")
    assert STUDENT_TEXT in own["public"].output
    hidden = own["hidden"].output
    assert "ValueError" in hidden and hidden.startswith("On hidden inputs: ") and hidden.endswith("?"), hidden
    assert STUDENT_TEXT not in hidden and STUDENT_PRINT not in hidden, hidden


# ---------------------------------------------------------------------------------------------------
# 4. Correct alternatives score full marks


@pytest.mark.parametrize("part", ["partA", "partB"])
def test_correct_alternatives_score_full_marks(graded, part):
    report = graded(f"alternatives-{part}")
    assert_every_test_ran(report, part)
    problems = [f"{o.test.name}: {o.output}" for o in report.outcomes if o.status != "passed"]
    assert not problems, "\n".join(problems)
    assert report.score == report.max_score
