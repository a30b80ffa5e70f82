"""The grader keeps working under bad input (issue 6, item 6): whatever a submission does, each problem
gets a clear message on the tests it affects, the other tests still run, and ``results.json`` is written.

Oracle: submissions the tests write themselves — files that are not notebooks, and one Part B notebook
(the solution, in which one function per problem misbehaves: an endless loop, a memory bomb, a fork,
a flood of output, ``os._exit``, ``sys.exit``, a killed process, monkey-patching torch and the checks,
reading outside its scratch folder, a socket, wrong types, dtypes, devices, NaNs, a syntax error, a
cell that hangs while loading, a NaN loss, a wrong shape). Expected: exactly those functions (and what is built on them) lose
their points, with the message naming the problem; every other test passes.
"""

from __future__ import annotations

import json
import textwrap

import nbformat
import pytest

from autograder.grade import grade_batch, grade_submission
from autograder.reports import write_report
from autograder.sandbox import Limits
from course.notebooks.build import REPO_ROOT

SOLUTION_B = REPO_ROOT / "solutions" / "partB" / "partB.ipynb"
LIMITS = Limits(call_s=6.0, memory_mb=768, file_mb=8)  # short, so that the loops and bombs end quickly

BAD_CELLS = {  # grade_id → the cell a misbehaving student wrote instead of the solution
    "interpolate": """
        def interpolate(x0, x1, t):
            while True:  # an endless loop
                pass
        """,
    "flow_target": """
        def flow_target(x0, x1):
            import os
            os._exit(3)
        """,
    "add_noise": """
        def add_noise(x, sigma, noise=None, generator=None):
            secrets = open("/etc/passwd").read()
            noise = torch.randn(x.shape, generator=generator) if noise is None else noise
            return x + sigma * noise
        """,
    "FCBlock": """
        class FCBlock(nn.Module):
            def __init__(self, in_features, out_features):
                super().__init__()
                import os
                os.fork()
        """,
    "ddpm_schedule": """
        def ddpm_schedule(beta1=1e-4, beta2=0.02, num_ts=300):
            hoard = []
            while True:  # a memory bomb
                hoard.append(bytearray(50 * 1024 * 1024))
        """,
    "pure_noise_loss": """
        def pure_noise_loss(unet, x, generator=None):
            import sys
            sys.exit(1)
        """,
    "Flatten": """
        class Flatten(nn.Module):
            def __init__(self):
                super().__init__()
                self.pool = nn.AvgPool2d(7)
                self.act = nn.GELU()

            def forward(self, x):
                return [self.act(self.pool(x))]  # a list, not a tensor
        """,
    "Concat": """
        class Concat(nn.Module):
            def forward(self, x, y):
                return torch.cat([x, y], dim=1).double()  # float64
        """,
    "UpConv": """
        class UpConv(nn.Module):
            def __init__(self, in_channels, out_channels):
                super().__init__()
                self.conv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1)
                self.norm = nn.BatchNorm2d(out_channels)
                self.act = nn.GELU()

            def forward(self, x):
                return self.act(self.norm(self.conv(x))).to("meta")  # another device
        """,
    "DownConv": """
        class DownConv(nn.Module):
            def __init__(self, in_channels, out_channels):
                super().__init__()
                import socket
                socket.create_connection(("example.com", 80), timeout=1)
        """,
    "class_fm_forward": """
        def class_fm_forward(unet, x1, labels, p_uncond=0.1, generator=None):
            for _ in range(100):
                print("spam " * 200_000)  # a flood of output, 100 MB: drained, its last 64 KB kept
            return x1.sum()
        """,
    "time_fm_sample": """
        def time_fm_sample(unet, num_samples, img_wh=(28, 28), num_ts=50, generator=None, return_trajectory=False):
            import signal
            signal.raise_signal(signal.SIGKILL)  # the process is killed
        """,
    "ConvBlock": """
        class ConvBlock(nn.Module):
            def __init__(self, in_channels, out_channels)  # a syntax error
                super().__init__()
        """,
    "time_fm_forward": """
        def time_fm_forward(unet, x1, generator=None):
            import os
            folder = os.path.dirname(__import__("autograder.semantic").semantic.__file__)
            return open(os.path.join(folder, "semantic.py")).read()  # the grader's hidden checks
        """,
}
EDITS = {  # grade_id → (line of the solution, what the student wrote instead)
    "ddpm_forward": ("return F.mse_loss(unet(xt, (t / num_ts).to(dtype)), eps)",
                     "return F.mse_loss(unet(xt, (t / num_ts).to(dtype)), eps) * float('nan')  # NaN"),
    "class_fm_sample": ("return (x, trajectory) if return_trajectory else x",
                        "return (x, trajectory) if return_trajectory else x[:, :, :14]  # half the rows"),
    "ddpm_step": ("return mean if z is None else mean + math.sqrt(beta) * z",
                  "return mean  # forgets the noise, and patches torch and the checks (above) to hide it"),
}
PATCHES = """
torch.allclose = lambda *args, **kwargs: True  # monkey-patching torch
torch.testing.assert_close = lambda *args, **kwargs: None
checks = __import__("fwd_kit.checks.compare").checks.compare  # and the kit's checks (the grader's are not there)
checks.close = lambda *args, **kwargs: True
checks.assert_close = lambda *args, **kwargs: None
"""
HANGING_UNFLATTEN_TAIL = "\n_forever = sum(__import__('itertools').count())  # hangs while the cell loads\n"

EXPECTED = {  # graded name → a fragment of the message of its public test
    "interpolate": "took longer than 6 s",
    "flow_target": "exited with code 3",
    "add_noise": "does not allow opening '/etc/passwd'",
    "FCBlock": "does not allow os.fork",
    "ddpm_schedule": "more memory than the grader allows",
    "pure_noise_loss": "sys.exit(1)",
    "Flatten": "should be a torch.Tensor",
    "Concat": "dtype float64",
    "UpConv": "tensor on meta",
    "DownConv": "does not allow socket",
    "class_fm_forward": "call the UNet once",  # the flood did no harm
    "time_fm_sample": "signal 9",
    "ConvBlock": "syntax error on line 2",
    "time_fm_forward": ("imports code the assignment does not provide",  # refused when reading the notebook,
                        "no module named 'autograder'",  # else not even visible (bubblewrap), else refused
                        "only the scratch folder is yours"),
    "ddpm_forward": "your loss is nan",
    "class_fm_sample": "has shape (3, 1, 14, 28), but should have shape (3, 1, 28, 28)",
    "Unflatten": "took longer than 6 s",
}
BUILT_ON = {  # classes and functions that use a broken one: their score follows the course-helpers policy
    "DownBlock", "UnconditionalUNet", "TimeConditionalUNet", "ClassConditionalUNet",  # the blocks
    "denoiser_loss",  # add_noise
    "UpBlock",  # UpConv
    "ddpm_step", "ddpm_sample", "class_ddpm_sample",  # the wrong ddpm_step, hidden by patching torch and checks
}


def dedent(source: str) -> str:
    return textwrap.dedent(source).strip() + "\n"


def write_bad_notebook(path):
    nb = nbformat.read(SOLUTION_B, as_version=4)
    replaced = set()
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in BAD_CELLS:
            cell.source = dedent(BAD_CELLS[grade_id])
        elif grade_id in EDITS:
            old, new = EDITS[grade_id]
            assert old in cell.source
            cell.source = (PATCHES if grade_id == "ddpm_step" else "") + cell.source.replace(old, new)
        elif grade_id == "Unflatten":
            cell.source = cell.source + HANGING_UNFLATTEN_TAIL
        else:
            continue
        replaced.add(grade_id)
    assert replaced == set(BAD_CELLS) | set(EDITS) | {"Unflatten"}
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def bad_report(tmp_path_factory):
    path = write_bad_notebook(tmp_path_factory.mktemp("bad") / "partB.ipynb")
    return grade_submission(path, limits=LIMITS, kinds=("public",))  # hidden tests: the same machinery


def outcome(report, name: str, kind: str = "public"):
    return next(o for o in report.outcomes if o.test.target == name and o.test.kind == kind)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_misbehaving_function_fails_with_a_message_naming_the_problem(bad_report, name):
    public = outcome(bad_report, name)
    assert public.status == "failed" and public.score == 0
    options = EXPECTED[name] if isinstance(EXPECTED[name], tuple) else (EXPECTED[name],)
    assert any(option.lower() in public.output.lower() for option in options), public.output


def test_every_other_test_still_runs_and_passes(bad_report):
    broken = set(EXPECTED) | BUILT_ON
    others = [o for o in bad_report.outcomes if o.test.target not in broken]
    assert len({o.test.target for o in others}) >= 2  # Conv, class_ddpm_forward
    failing = {o.test.name: o.output[:200] for o in others if o.status != "passed"}
    assert not failing


def test_patching_torch_and_the_checks_does_not_hide_a_wrong_ddpm_step(bad_report):
    """The checks run in the grader: the student's process patching its own torch and kit changes nothing.
    The mistake is caught by ddpm_step's own check or, where it has none, by the samplers' checks."""
    caught = [o for o in bad_report.outcomes if o.test.target in ("ddpm_step", "ddpm_sample", "class_ddpm_sample")
              and o.status == "failed" and ("Does ddpm_step" in o.output or "Does each step" in o.output)]
    assert caught, [(o.test.name, o.output[:200]) for o in bad_report.outcomes if "ddpm" in o.test.target]


def test_the_hanging_cell_is_left_out_and_reported(bad_report):
    assert "left out" in bad_report.output
    assert "spam" in bad_report.output  # what the code printed, the end of it


def test_results_json_is_written_for_the_bad_notebook(bad_report, tmp_path):
    results = json.loads(write_report(bad_report, tmp_path).read_text())
    assert results["score"] == bad_report.score > 0
    assert {"name", "number", "score", "max_score", "status", "visibility", "output"} <= set(results["tests"][0])
    assert (tmp_path / "feedback.html").read_text().count("<tr class=") == len(results["tests"])


NOT_NOTEBOOKS = {
    "empty.ipynb": b"",
    "garbage.ipynb": b"\x89PNG\r\n\x1a\n not json at all",
    "list.ipynb": b"[1, 2, 3]",
    "nocells.ipynb": b'{"metadata": {}, "nbformat": 4}',
}


def test_files_that_are_not_notebooks_get_results_saying_why(tmp_path):
    for name, data in NOT_NOTEBOOKS.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "empty_folder").mkdir()
    paths = [tmp_path / n for n in NOT_NOTEBOOKS] + [tmp_path / "empty_folder", tmp_path / "missing.ipynb"]
    reports = grade_batch(paths, tmp_path / "out", part="partB", jobs=2, log=lambda *_: None)
    expected = ["is empty", "not valid JSON", "not a Jupyter notebook", "no list of cells",
                "found none", "nothing there"]
    for path, report, fragment in zip(paths, reports, expected):
        results = json.loads((tmp_path / "out" / path.stem / "results.json").read_text())
        assert results["score"] == 0 and results["tests"], path.name
        assert fragment in results["output"], (path.name, results["output"])
        assert all(fragment in t["output"] for t in results["tests"])
    rows = (tmp_path / "out" / "summary.csv").read_text().splitlines()
    assert len(rows) == 1 + len(paths) and rows[0].startswith("submission,part,score,max_score,Conv: public check")


def test_a_task_whose_process_dies_or_overruns_affects_only_itself():
    """``grade_batch`` grades each submission in a process of its own (:mod:`autograder.supervise`)."""
    import os
    import time

    from autograder.supervise import run_each

    ended = {e.index: e for e in run_each(os._exit, [(3,)], jobs=2, deadline_s=30)}
    assert "exit code 3" in ended[0].problem
    ended = {e.index: e for e in run_each(time.sleep, [(30,), (0,)], jobs=2, deadline_s=3)}
    assert "deadline" in ended[0].problem and ended[1].problem == "" and ended[1].result is None


def test_a_replay_runs_the_hooks_and_runs_the_forward_only_where_something_reads_it():
    """A UNet a check records is replayed to its pre-hooks only (the forward would be the grader's cost for
    nothing); a module with a forward hook, a recorder of its own or batch-norm statistics runs in full."""
    import torch

    from autograder.remote import _replay

    class Counted(torch.nn.Module):
        def __init__(self, norm: bool = False):
            super().__init__()
            self.forwards, self.norm = 0, torch.nn.BatchNorm1d(2) if norm else None

        def forward(self, x, scale=1.0):
            self.forwards += 1
            return x * scale if self.norm is None else self.norm(x)

    seen = []
    records = [{"args": [torch.ones(3, 2)], "kwargs": {"scale": 2.0}, "training": True}]
    hooked = Counted()
    hooked.register_forward_pre_hook(lambda m, a, k: seen.append((m.training, a[0].shape, k["scale"])), with_kwargs=True)
    _replay(hooked, records, False, float("inf"))
    assert seen == [(True, (3, 2), 2.0)] and hooked.forwards == 0 and not hooked.training
    assert hooked(torch.ones(1, 2), scale=3.0).shape == (1, 2) and hooked.forwards == 1  # its own forward is back
    outputs = []
    watched = Counted()
    watched.register_forward_hook(lambda m, a, out: outputs.append(out))
    _replay(watched, records, True, float("inf"))
    assert watched.forwards == 1 and torch.equal(outputs[0], torch.full((3, 2), 2.0))
    normed = Counted(norm=True)
    normed.register_forward_pre_hook(lambda m, a: None)
    _replay(normed, records, True, float("inf"))
    assert normed.forwards == 1 and int(normed.norm.num_batches_tracked) == 1


def test_the_grader_replays_a_bounded_number_of_recorded_calls():
    """One 8 MB tensor referenced by 151 records once took the grader to 5.5 GB: refused before decoding."""
    import torch

    from autograder.remote import SandboxFailure, check_replay_budget

    tensors = {"r0": torch.zeros(2 * 1024 * 1024)}  # 8 MB
    record = {"args": {"list": [{"tensor": "r0", "grad": False}]}, "kwargs": {"dict": {}}, "training": False}
    check_replay_budget({"m0": [record] * 4}, tensors)  # 32 MB: fine
    with pytest.raises(SandboxFailure, match="MB of tensors"):
        check_replay_budget({"m0": [record] * 5}, tensors)
    with pytest.raises(SandboxFailure, match="times"):
        check_replay_budget({"m0": [{"args": {"list": []}}] * 5000}, {})


def test_only_a_shown_process_has_its_output_read():
    """The hidden tests' process (not shown) prints into nothing the grader reads; the public tests' process
    has its output drained through a pipe, even a truncation of its stdout does not hide what came before."""
    from autograder.sandbox import Cell, Sandbox

    source = ("import os, sys\nprint('before', flush=True)\nos.ftruncate(1, 0) if False else None\n"
              "print('hidden input 0.1234', flush=True)\n")
    with Sandbox([Cell("talk", source)], [], diffusers=False) as shown:
        shown.start()
        assert "hidden input 0.1234" in shown.output_tail() and "before" in shown.output_tail()
    with Sandbox([Cell("talk", source)], [], shown=False, diffusers=False) as sealed:
        sealed.start()
        assert not sealed.load_errors
        assert sealed.output_tail() == ""


def test_one_deadline_covers_starting_and_loading_the_cells():
    """Slow cells once took 941 s before the first test: now loading them counts against ``total_s``."""
    import time

    from autograder.remote import SandboxFailure
    from autograder.sandbox import Cell, Sandbox

    cells = [Cell(f"slow {i}", "import time\ntime.sleep(20)\n") for i in range(8)]
    begin = time.monotonic()
    with Sandbox(cells, [], Limits(call_s=30.0, total_s=25.0)) as sandbox:
        try:
            sandbox.start()
        except SandboxFailure as err:
            assert "in all" in str(err)
        with pytest.raises(SandboxFailure, match="in all"):
            sandbox.request({"op": "ping"}, {})
    assert time.monotonic() - begin < 25.0 + 15.0
