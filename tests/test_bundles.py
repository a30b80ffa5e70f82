"""Reference bundles (their format: fwd_kit.bundle; the reference run: course.bundle, ``course bundle``) and
students' artifacts (autograder.artifacts).

A bundle of the digit model is built on the CPU through the CLI. The "student" is a notebook-like
namespace: the reference functions' sources run in one dict with the notebook's provided imports, so a
student's sdedit calls the student's forward, as in a notebook. Oracles: the forward process written out
here, the recomputed input hashes, and for wrong code the entries that depend on it.
"""

from __future__ import annotations

import copy
import inspect

import pytest
import torch

from autograder.artifacts import compare_artifacts
from course.bundle import build_bundle, make_inputs
from course.cli import main
from fwd_kit.artifacts import ARTIFACTS_FORMAT, export_artifacts
from fwd_kit.bundle import (
    ENTRIES,
    FORMAT,
    entry_tolerance,
    looser,
    model_fingerprint,
    model_mismatch,
    read_file,
    tensor_sha256,
    write_file,
)
from reference import denoise, editing, illusions

NOTEBOOK_IMPORTS = """
import torch
import torchvision.transforms.functional as TF
from fwd_kit.validate import check_embeds, check_i_start, check_image, check_same_shape, check_timestep, check_timesteps
from reference.denoise import add_variance, denoise_step, gaussian_noise, predict_noise, set_strided_timesteps
from reference.editing import check_mask
"""
STUDENT_FUNCTIONS = [denoise.forward, denoise.estimate_x0, denoise.one_step_denoise, denoise.denoise_step_mean,
                     denoise.iterative_denoise, denoise.cfg_noise, denoise.iterative_denoise_cfg, editing.sdedit,
                     editing.inpaint, illusions.flip_upside_down, illusions.visual_anagram, illusions.lowpass,
                     illusions.highpass, illusions.make_hybrids]
LOOPS_CALLING_FORWARD = {"sdedit", "inpaint"}


def notebook_namespace() -> dict:
    """The solution notebook's globals: provided imports, then each student function from its source."""
    namespace: dict = {}
    exec(NOTEBOOK_IMPORTS, namespace)
    for fn in STUDENT_FUNCTIONS:
        if fn is illusions.visual_anagram:  # the notebook defines flip_view before visual_anagram
            exec("flip_view = (flip_upside_down, flip_upside_down)", namespace)
        exec(inspect.getsource(fn), namespace)
    return namespace


@pytest.fixture(scope="module")
def digit():
    from fwd_kit.loading import DIGIT_MODEL, load_stage1

    torch.set_num_threads(1)
    return load_stage1(DIGIT_MODEL, device="cpu", dtype=torch.float32)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """(full bundle, students' inputs-only copy) of the digit model on the CPU, made by ``course bundle``."""
    folder = tmp_path_factory.mktemp("bundle")
    full, inputs_only = folder / "bundle.safetensors", folder / "inputs.safetensors"
    assert main(["bundle", "--model", "digit", "--device", "cpu", "--dtype", "float32", "--out", str(full),
                 "--inputs-out", str(inputs_only)]) == 0
    return full, inputs_only


@pytest.fixture(scope="module")
def solution_artifacts(bundle, digit, tmp_path_factory):
    path = tmp_path_factory.mktemp("artifacts") / "solution.safetensors"
    return export_artifacts(notebook_namespace(), bundle[1], digit.unet, digit.scheduler, path)


def failed_names(results) -> set[str]:
    return {r.name for r in results if not r.passed}


def rewrite(path, out, manifest_update=None, change=None):
    """A copy of a bundle or artifacts file with its manifest updated and its tensors changed by ``change``."""
    kind = FORMAT if "bundle" in path.name else ARTIFACTS_FORMAT
    manifest, tensors = read_file(path, kind)
    tensors = change(tensors) if change else tensors
    return write_file(out, tensors, {**manifest, **(manifest_update or {})})


def test_bundle_holds_inputs_outputs_and_a_manifest_that_describes_them(bundle, digit):
    import diffusers

    manifest, tensors = read_file(bundle[0], FORMAT)
    assert manifest["model"]["id"] == "digit" and (manifest["device"], manifest["dtype"]) == ("cpu", "float32")
    assert manifest["versions"]["torch"] == torch.__version__
    assert manifest["versions"]["diffusers"] == diffusers.__version__
    assert set(manifest["entries"]) == set(ENTRIES) and len(set(manifest["seeds"].values())) == len(ENTRIES) - 1
    inputs = {k[len("input/"):]: v for k, v in tensors.items() if k.startswith("input/")}
    assert manifest["inputs"] == {k: tensor_sha256(v) for k, v in inputs.items()}
    # the forward process, written out here: x_t = sqrt(ᾱ_t)·x0 + sqrt(1 − ᾱ_t)·ε
    ab = digit.scheduler.alphas_cumprod
    for t in (250, 500, 750):
        expected = ab[t].sqrt() * inputs["x0"] + (1 - ab[t]).sqrt() * inputs["noise"]
        torch.testing.assert_close(tensors[f"output/forward/t{t}"], expected)
    # loops get looser tolerances than formulas; the students' copy has no outputs
    formula, loop = manifest["entries"]["forward/t250"]["tolerance"], manifest["entries"]["sdedit"]["tolerance"]
    assert loop["rtol"] > formula["rtol"] and loop["max_outside"] > formula["max_outside"] == 0
    student_manifest, student_tensors = read_file(bundle[1], FORMAT)
    assert student_manifest["inputs_only"] and student_tensors.keys() == {f"input/{k}" for k in inputs}


def test_inputs_are_made_on_the_cpu_from_the_seed(digit):
    embeds = torch.randn(3, 1, 77, 32, generator=torch.Generator().manual_seed(5))
    make = lambda seed: make_inputs(32, *embeds, digit.scheduler.alphas_cumprod, seed=seed)
    a, b, c = make(0), make(0), make(1)
    assert all(torch.equal(a[k], b[k]) and a[k].device.type == "cpu" and a[k].dtype == torch.float32 for k in a)
    assert not torch.equal(a["x0"], c["x0"]) and a["x0"].abs().max() < 1


def test_the_solution_passes_every_entry(bundle, solution_artifacts):
    manifest, _ = read_file(solution_artifacts, ARTIFACTS_FORMAT)
    assert manifest["errors"] == {} and manifest["device"] == "cpu"
    results = compare_artifacts(solution_artifacts, bundle[0])
    assert [r.name for r in results] == list(ENTRIES)
    assert failed_names(results) == set(), [r.message for r in results if not r.passed]
    # same code on the same CPU: equal up to float32 rounding, which loops amplify (the bundle and the export
    # may run on other thread counts); far inside the tolerances
    bound = {"formula": 1e-5, "unet": 1e-4, "loop": 1e-3}  # CFG multiplies differences by γ = 7
    assert all(r.max_error <= bound[ENTRIES[r.name].kind] and r.message.startswith("Does") for r in results), \
        [(r.name, r.max_error) for r in results if r.max_error > bound[ENTRIES[r.name].kind]]


def test_a_wrong_forward_fails_forward_and_the_loops_that_call_it(bundle, digit, tmp_path):
    namespace = notebook_namespace()
    real_forward = namespace["forward"]

    def forward(x0, t, alphas_cumprod, noise=None, generator=None):  # a typical slip: ᾱ_t without the sqrt
        xt = real_forward(x0, t, alphas_cumprod, noise=noise, generator=generator)
        ab = alphas_cumprod[t]
        return xt + (ab - ab.sqrt()) * x0

    namespace["forward"] = forward
    path = export_artifacts(namespace, bundle[1], digit.unet, digit.scheduler, tmp_path / "a.safetensors")
    results = compare_artifacts(path, bundle[0])
    expected = {n for n in ENTRIES if n.startswith("forward/")} | LOOPS_CALLING_FORWARD
    assert failed_names(results) == expected
    bad = next(r for r in results if r.name == "forward/t500")
    assert bad.message.startswith("Does forward") and "values differ" in bad.message and bad.max_error > 0.01


def test_stubs_and_missing_functions_fail_only_their_entries(bundle, digit, tmp_path, capsys):
    namespace = notebook_namespace()

    def make_hybrids(*args, **kwargs):
        raise NotImplementedError()

    namespace["make_hybrids"] = make_hybrids
    del namespace["flip_upside_down"]  # visual_anagram needs it for its view
    namespace["denoise_step_mean"] = lambda *args: "not a tensor"  # the loops of 1.4-1.7 call it too
    path = export_artifacts(namespace, bundle[1], digit.unet, digit.scheduler, tmp_path / "a.safetensors")
    assert "6 entries failed to run" in capsys.readouterr().out
    results = {r.name: r for r in compare_artifacts(path, bundle[0])}
    assert failed_names(results.values()) == {"make_hybrids/one_step", "visual_anagram/one_step",
                                              "denoise_step_mean/t690", "iterative_denoise/one_step",
                                              "iterative_denoise_cfg/short", "sdedit"}
    assert "NotImplementedError" in results["make_hybrids/one_step"].message
    assert "no function named flip_upside_down" in results["visual_anagram/one_step"].message
    assert "should return a torch.Tensor" in results["denoise_step_mean/t690"].message


def test_a_perturbed_entry_fails_alone_and_loops_allow_a_few_outliers(bundle, solution_artifacts, tmp_path):
    def perturb(name, count):
        def change(tensors):
            out = tensors[f"output/{name}"].clone()
            out.view(-1)[:count] += 1.0
            return {**tensors, f"output/{name}": out}
        return change

    one_value = rewrite(solution_artifacts, tmp_path / "a1.safetensors", change=perturb("cfg_noise/variance", 1))
    assert failed_names(compare_artifacts(one_value, bundle[0])) == {"cfg_noise/variance"}
    numel = read_file(solution_artifacts, ARTIFACTS_FORMAT)[1]["output/inpaint"].numel()
    few = rewrite(solution_artifacts, tmp_path / "a2.safetensors", change=perturb("inpaint", numel // 200))
    assert failed_names(compare_artifacts(few, bundle[0])) == set()  # 0.5% of a loop's values: within 1%
    many = rewrite(solution_artifacts, tmp_path / "a3.safetensors", change=perturb("inpaint", numel // 50))
    assert failed_names(compare_artifacts(many, bundle[0])) == {"inpaint"}


def test_another_model_is_refused_at_export_and_rejected_at_comparison(bundle, digit, solution_artifacts, tmp_path):
    from fwd_kit.tiny import stage1_scheduler, tiny_stage1_unet

    tiny, scheduler = tiny_stage1_unet(), stage1_scheduler()
    with pytest.raises(ValueError, match="made with digit, but your UNet"):
        export_artifacts(notebook_namespace(), bundle[1], tiny, scheduler, tmp_path / "tiny.safetensors")
    forged = rewrite(solution_artifacts, tmp_path / "tiny.safetensors",
                     {"model": model_fingerprint(tiny, scheduler, "IF-I-tiny")})
    results = compare_artifacts(forged, bundle[0])
    assert failed_names(results) == set(ENTRIES)
    assert all("made with IF-I-tiny, but the reference with digit" in r.message for r in results)
    # same architecture, other weights (a retrained digit model): caught by the weight probe
    retrained = copy.deepcopy(digit.unet)
    with torch.no_grad():
        next(retrained.parameters()).add_(0.01)
    assert "weights differ" in model_mismatch(model_fingerprint(digit.unet, digit.scheduler),
                                              model_fingerprint(retrained, digit.scheduler))
    # float16 weights are the same model
    assert model_mismatch(model_fingerprint(digit.unet, digit.scheduler),
                          model_fingerprint(copy.deepcopy(digit.unet).half(), digit.scheduler)) is None


def test_artifacts_from_other_inputs_are_rejected(digit, solution_artifacts, tmp_path):
    from fwd_kit.digit_model import DIGIT_PROMPTS
    from fwd_kit.loading import DIGIT_EMBEDS, load_prompt_embeds

    other = build_bundle(digit.unet, digit.scheduler, load_prompt_embeds(DIGIT_EMBEDS), (DIGIT_PROMPTS[6],
                         DIGIT_PROMPTS[9]), tmp_path / "other_bundle.safetensors", model_id="digit", seed=1)
    results = compare_artifacts(solution_artifacts, other)
    assert failed_names(results) == set(ENTRIES)
    assert all("inputs differ" in r.message and r.max_error is None for r in results)


def test_missing_or_damaged_files_give_messages_not_exceptions(bundle, solution_artifacts, tmp_path):
    missing = compare_artifacts(tmp_path / "nothing.safetensors", bundle[0])
    assert failed_names(missing) == set(ENTRIES) and "Did you submit the artifacts file?" in missing[0].message
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01 not a safetensors file")
    assert "cannot be read" in compare_artifacts(garbage, bundle[0])[0].message
    not_ours = write_file(tmp_path / "other.safetensors", {"x": torch.zeros(2)}, {"format": "something else"})
    assert "is not a fun-with-diffusion/partA-artifacts file" in compare_artifacts(not_ours, bundle[0])[0].message
    manifest = read_file(solution_artifacts, ARTIFACTS_FORMAT)[0]
    junk = rewrite(solution_artifacts, tmp_path / "junk.safetensors", {"model": {**manifest["model"], "probe": "x"}})
    assert all("weights differ" in r.message for r in compare_artifacts(junk, bundle[0]))
    no_model = rewrite(solution_artifacts, tmp_path / "no_model.safetensors", {"model": None})
    assert "It has no model description" in compare_artifacts(no_model, bundle[0])[0].message
    for bad_bundle in (bundle[1], tmp_path / "no_bundle.safetensors"):  # the students' copy, or none
        (result,) = compare_artifacts(solution_artifacts, bad_bundle)
        assert result.name == "bundle" and not result.passed and "full reference bundle" in result.message
    with pytest.raises(ValueError, match="Download it again"):
        export_artifacts({}, garbage, None, None, tmp_path / "x.safetensors")


def test_tolerance_is_the_looser_of_both_dtypes_and_devices():
    cpu32, cpu16 = entry_tolerance("formula", "cpu", "float32"), entry_tolerance("formula", "cpu", "float16")
    assert cpu16["rtol"] > cpu32["rtol"] and cpu16["atol"] > cpu32["atol"]
    assert entry_tolerance("formula", "cuda", "float32") == entry_tolerance("formula", "cuda", "float16")  # TF32
    assert entry_tolerance("loop", "cpu", "float32")["rtol"] > entry_tolerance("unet", "cpu", "float32")["rtol"] \
        > cpu32["rtol"]
    assert looser(cpu32, cpu16) == cpu16 == looser(cpu16, cpu32)


def test_float16_artifacts_are_judged_at_float16_precision(bundle, solution_artifacts, tmp_path):
    def to_half(tensors):
        return {k: v.half() for k, v in tensors.items()}

    half = rewrite(solution_artifacts, tmp_path / "half.safetensors", {"dtype": "float16"}, to_half)
    assert failed_names(compare_artifacts(half, bundle[0])) == set()
    # the same numbers claimed as float32: float16 rounding is too coarse for float32 formulas
    claimed = rewrite(solution_artifacts, tmp_path / "claimed.safetensors", {"dtype": "float32"}, to_half)
    assert {f"forward/t{t}" for t in (250, 500, 750)} <= failed_names(compare_artifacts(claimed, bundle[0]))

    def wrong(tensors):
        tensors = to_half(tensors)
        return {**tensors, "output/forward/t500": tensors["output/forward/t500"] + 0.1}

    clearly_wrong = rewrite(solution_artifacts, tmp_path / "wrong.safetensors", {"dtype": "float16"}, wrong)
    assert failed_names(compare_artifacts(clearly_wrong, bundle[0])) == {"forward/t500"}
    # a float16 bundle (its own looser tolerances) passes float32 artifacts of the same computation
    half_manifest = read_file(bundle[0], FORMAT)[0]
    entries = {n: {**e, "tolerance": entry_tolerance(e["kind"], "cpu", "float16")}
               for n, e in half_manifest["entries"].items()}
    half_bundle = rewrite(bundle[0], tmp_path / "half_bundle.safetensors", {"dtype": "float16", "entries": entries},
                          lambda t: {k: v.half() if k.startswith("output/") else v for k, v in t.items()})
    assert failed_names(compare_artifacts(solution_artifacts, half_bundle)) == set()


def test_a_real_bfloat16_run_passes_against_the_float32_bundle(bundle, digit, tmp_path):
    """Computed in bfloat16 (CPU float16 convolutions are too slow): rounding everywhere, within tolerance."""
    unet = copy.deepcopy(digit.unet).to(torch.bfloat16)
    path = export_artifacts(notebook_namespace(), bundle[1], unet, digit.scheduler, tmp_path / "bf16.safetensors")
    results = compare_artifacts(path, bundle[0])
    assert failed_names(results) == set(), [r.message for r in results if not r.passed]
    assert all(r.max_error > 0 for r in results if r.name.startswith("one_step"))


# ---------------------------------------------------------------------------------------------------
# Through `course grade`: a bundle round trip (bundle → artifacts from the solution → grade)


def test_course_grade_compares_the_submitted_artifacts_with_the_bundle(bundle, solution_artifacts, digit, tmp_path):
    import shutil

    from autograder.catalogue import ARTIFACT_POINTS, ARTIFACTS_FILE
    from autograder.grade import grade_submission
    from course.notebooks.build import REPO_ROOT

    solution = REPO_ROOT / "solutions" / "partA" / "partA.ipynb"
    good, wrong, none = (tmp_path / name for name in ("good", "wrong", "none"))
    for folder in (good, wrong, none):
        folder.mkdir()
        shutil.copy(solution, folder / "partA.ipynb")
    shutil.copy(solution_artifacts, good / ARTIFACTS_FILE)
    namespace = notebook_namespace()
    exec("def forward(x0, t, alphas_cumprod, noise=None, generator=None):\n"  # a missing square root
         "    ab = alphas_cumprod[t]\n    return ab * x0 + (1 - ab) * noise\n", namespace)
    export_artifacts(namespace, bundle[1], digit.unet, digit.scheduler, wrong / ARTIFACTS_FILE)

    def graded(folder):  # artifacts only (no sandbox tests): a few seconds
        report = grade_submission(folder, kinds=(), bundle=bundle[0])
        assert [o.test.kind for o in report.outcomes] == ["artifacts"] * len(ENTRIES)
        return report

    report = graded(good)
    assert report.score == report.max_score == ARTIFACT_POINTS * len(ENTRIES)
    lost = {o.test.name.rsplit(" ", 1)[-1] for o in graded(wrong).outcomes if o.score == 0}
    assert lost == {n for n in ENTRIES if n.startswith("forward/")} | LOOPS_CALLING_FORWARD
    missing = graded(none)
    assert missing.score == 0 and all("Did you submit the artifacts file?" in o.output for o in missing.outcomes)
    students_copy = grade_submission(good, kinds=(), bundle=bundle[1])  # the grader given the wrong file
    assert students_copy.score == 0 and "reference bundle is unusable" in students_copy.output
