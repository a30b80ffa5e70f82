"""A submission that attacks the grader gets nowhere (issue 17): the kernel confines the student's process
(bubblewrap, another uid, seccomp, Landlock — whatever this machine offers, :mod:`autograder.isolation`),
and the audit hook is only a courtesy on top.

Oracle: secrets the tests plant themselves — a token in the grader's environment, a file outside the
scratch folder (world-readable, so that only the sandbox protects it), a marker in a neighbour's notebook
— must never show up in any file the grader writes; files the attacks try to write must not exist
afterwards; a local TCP listener must see no connection; no process the attacks start may be alive after
grading; and the clean neighbour graded beside the hostile submission keeps full marks.

One batch grades both (one child start each, in parallel). The hostile functions run every attack, note
for each whether it succeeded, and raise that log so that it lands in the feedback where the test reads it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import nbformat
import pytest
import torch
from nbformat.v4 import new_markdown_cell
from submission_kit import answer_cell, solution_notebook

import autograder.grade
from autograder import isolation
from autograder.grade import grade_batch
from autograder.sandbox import Limits

SECRET = "sekrit-hostile-4c1d"  # planted in the grader's environment and in a file outside the scratch folder
os.environ["HF_TOKEN"] = SECRET  # at import: every grading process of this session inherits it
NEIGHBOUR_MARK = "neighbour-notebook-7f3e"  # in the clean neighbour's notebook
SLEEPER_MARK = "fwd-hostile-sleeper"  # in the command line of any process an attack manages to start
SECRET_VALUE = 31337.0  # in the planted tensor files
LIMITS = Limits(call_s=30.0, memory_mb=1024, file_mb=8)

PRELUDE = '''
import os, sys, torch
def _attempt(log, name, action):
    try:
        log.append(f"{name}: SUCCEEDED {action()!r}"[:160])
    except BaseException as err:
        log.append(f"{name}: refused ({type(err).__name__})")
def _fork_exec(setsid):
    module = getattr(sys.modules.get("subprocess"), "_posixsubprocess", None) or __import__("_posixsubprocess")
    r, w = os.pipe()
    args = [[b"/bin/sh", b"-c", b"sleep 30 # MARK"], [b"/bin/sh"], True, (), None, None,
            -1, -1, -1, -1, -1, -1, r, w, True, setsid, -1, None, None, None, -1, None]
    try:
        return module.fork_exec(*args)
    except TypeError:
        return module.fork_exec(*args, False)  # Python 3.12: allow_vfork
'''

HOSTILE = {  # graded name → attacks, then the log raised (names and signatures of the solution)
    "interpolate": '''
def interpolate(x0, x1, t):
    log = []
    _attempt(log, "fork_exec", lambda: _fork_exec(True))
    _attempt(log, "posix_spawn", lambda: os.posix_spawn("/bin/sh", ["sh", "-c", "sleep 30 # {mark}"], {{}}))
    _attempt(log, "fork", os.fork)
    _attempt(log, "multiprocessing", lambda: sys.modules["torch"].multiprocessing.get_context("spawn")
             .Process(target=print).start())
    _attempt(log, "import multiprocessing", lambda: __import__("multiprocessing").get_context("spawn"))
    raise RuntimeError("HOSTILE " + " | ".join(log))
''',
    "flow_target": '''
def flow_target(x0, x1):
    from datetime import timedelta
    log = []
    _attempt(log, "_socket", lambda: __import__("_socket").socket(2, 1).connect(("127.0.0.1", {port})))
    _attempt(log, "TCPStore", lambda: __import__("torch.distributed").distributed.TCPStore(
        "127.0.0.1", {port}, 1, False, timeout=timedelta(seconds=2)))
    raise RuntimeError("HOSTILE " + " | ".join(log))
''',
    "add_noise": '''
def add_noise(x, sigma, noise=None, generator=None):
    import safetensors.torch
    log = []
    _attempt(log, "safetensors secret", lambda: safetensors.torch.load_file("{secret_st}"))
    _attempt(log, "from_file secret", lambda: bytes(torch.from_file("{secret_txt}", size=40, dtype=torch.uint8)))
    _attempt(log, "torch.load secret", lambda: torch.load("{secret_pt}"))
    _attempt(log, "torch.save out", lambda: torch.save(torch.ones(2), "{out}/hostile.pt"))
    _attempt(log, "forge neighbour", lambda: torch.save({{"score": 999}}, "{out}/clean/results.json"))
    _attempt(log, "torch.save tmp", lambda: torch.save(torch.ones(2), "{drop}/hostile.pt"))
    _attempt(log, "open out", lambda: open("{out}/hostile-wrote.txt", "w").write("FORGED"))
    _attempt(log, "neighbour", lambda: open("{neighbour}").read()[-3000:])
    _attempt(log, "neighbour native", lambda: bytes(torch.from_file("{neighbour}", size=2000, dtype=torch.uint8)))
    raise RuntimeError("HOSTILE " + " | ".join(log))
''',
    "ddpm_schedule": '''
def ddpm_schedule(beta1=1e-4, beta2=0.02, num_ts=300):
    import gc
    log = []
    _attempt(log, "gc hook", lambda: [f for f in gc.get_objects() if getattr(f, "__name__", "") == "_hook"])
    sys.modules["__main__"] = type(sys)("__main__")  # a step of the attack, not its goal
    _attempt(log, "code swap", lambda: setattr(_attempt, "__code__", (lambda *a: None).__code__))
    _attempt(log, "parent environ", lambda: open(f"/proc/{{os.getppid()}}/environ").read())
    _attempt(log, "pid 1 environ", lambda: open("/proc/1/environ").read())
    _attempt(log, "dir_fd environ", lambda: os.read(os.open("environ", os.O_RDONLY,
             dir_fd=os.open(f"/proc/{{os.getppid()}}", os.O_RDONLY)), 4000))
    _attempt(log, "dir_fd scratch", lambda: os.read(os.open("../proc/1/environ", os.O_RDONLY,
             dir_fd=os.open(".", os.O_RDONLY)), 4000))
    _attempt(log, "native environ", lambda: bytes(torch.from_file(f"/proc/{{os.getppid()}}/environ", size=64,
             dtype=torch.uint8)))
    _attempt(log, "hidden checks", lambda: open("{checks}").read()[:40])
    def _through_tracebacks():  # the hook's own frame, from the traceback of an error it raised
        try:
            open("/etc/passwd")
        except PermissionError as err:
            tb = err.__traceback__
        while tb.tb_next:
            tb = tb.tb_next
        frame = tb.tb_frame
        for scope in [frame.f_globals] + [getattr(v, "__globals__", {{}}) for v in frame.f_locals.values()]:
            scope.setdefault("__builtins__", {{}})["type"] = lambda value: int  # "every path is a descriptor"
            scope["__builtins__"]["PermissionError"] = lambda message: None
        return open("/etc/passwd").read()
    _attempt(log, "traceback frames", _through_tracebacks)
    _attempt(log, "passwd", lambda: open("/etc/passwd").read())
    raise RuntimeError("HOSTILE " + " | ".join(log))
''',
}
ATTACKS = {  # graded name → the attack labels its test output must show refused
    "interpolate": ["fork_exec", "posix_spawn", "fork", "multiprocessing", "import multiprocessing"],
    "flow_target": ["_socket", "TCPStore"],
    "add_noise": ["safetensors secret", "from_file secret", "torch.load secret", "torch.save out", "forge neighbour",
                  "torch.save tmp", "open out", "neighbour", "neighbour native"],
    "ddpm_schedule": ["gc hook", "code swap", "traceback frames", "parent environ", "pid 1 environ", "dir_fd environ", "dir_fd scratch",
                      "native environ", "hidden checks", "passwd"],
}
LEAKS = (SECRET, NEIGHBOUR_MARK, "root:x:0:0", "SUCCEEDED", "FORGED", str(int(SECRET_VALUE)))


class Listener:
    """A TCP server on 127.0.0.1 that counts the connections it accepts."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()


def plant_secrets(folder: Path) -> dict:
    """Secret files outside any scratch folder, readable by every user (only the sandbox protects them)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    paths = dict(secret_txt=folder / "secret.txt", secret_pt=folder / "secret.pt", secret_st=folder / "secret.safetensors")
    paths["secret_txt"].write_text(SECRET * 4)
    torch.save(torch.full((4,), SECRET_VALUE), paths["secret_pt"])
    save_file({"secret": torch.full((4,), SECRET_VALUE)}, paths["secret_st"])
    drop = folder / "drop"
    drop.mkdir()
    for path in [folder, drop, *paths.values()]:
        os.chmod(path, 0o777 if path.is_dir() else 0o644)
    return dict({k: str(v) for k, v in paths.items()}, drop=str(drop))


LEAKED_THREAD = '''
    import threading, time
    def _spoil():  # outlives the call: every later subtraction in this process returns its first operand
        while True:
            torch.Tensor.__sub__ = lambda a, b: a
            time.sleep(0.01)
    threading.Thread(target=_spoil, daemon=True).start()
'''


def hostile_notebook(values: dict, names=tuple(HOSTILE), keep=None, leak: bool = False):
    """The Part B solution with the answer cells of ``names`` replaced by attacks; with ``keep``, only those
    other answer cells kept (a small, quick submission); with ``leak``, ``add_noise`` also leaves a thread
    behind that breaks torch's subtraction (later tests must not notice: flow_target is ``x1 - x0``)."""
    nb = solution_notebook("partB")
    for name in names:
        cell = answer_cell(nb, name)
        source = textwrap.dedent(HOSTILE[name])
        if leak and name == "add_noise":
            source = source.replace("    raise RuntimeError", LEAKED_THREAD.strip("\n") + "\n    raise RuntimeError")
        cell.source = PRELUDE.replace("MARK", SLEEPER_MARK) + source.format(mark=SLEEPER_MARK, **values)
    if keep is not None:
        for cell in nb.cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if cell.cell_type == "code" and meta.get("solution") and meta.get("grade_id") not in set(names) | set(keep):
                cell.source = ""
    return nb


def clean_notebook():
    nb = solution_notebook("partB")
    nb.cells.insert(0, new_markdown_cell(f"Private notes: {NEIGHBOUR_MARK}"))
    return nb


def written_text(out: Path) -> str:
    """Everything the grader wrote under ``out``."""
    return "\n".join(p.read_text(errors="replace") for p in sorted(out.rglob("*")) if p.is_file())


def sleepers() -> list[str]:
    """Command lines of live processes that an attack started."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                line = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if SLEEPER_MARK in line and "pytest" not in line:
            found.append(line)
    return found


def outputs_of(results: dict, name: str) -> str:
    return "\n".join(t["output"] for t in results["tests"] if t["name"].startswith(f"{name}:"))


@pytest.fixture(scope="module")
def open_folder():
    """A fresh folder under /tmp that every user may traverse (pytest's own folders are closed to others)."""
    made = []

    def make(name: str, mode: int = 0o755) -> Path:
        made.append(Path(tempfile.mkdtemp(prefix=f"fwd-{name}-", dir="/tmp")))
        os.chmod(made[-1], mode)
        return made[-1]

    yield make
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def batch(open_folder, nobody_run, fallback_run):
    return grade_hostile_batch(open_folder("hostile"))  # while the other two gradings run beside it


def grade_hostile_batch(root: Path) -> dict:
    """The clean neighbour and the hostile submission, graded in one batch under ``root``."""
    listener = Listener()
    out = root / "out"
    neighbour = root / "clean" / "partB.ipynb"
    neighbour.parent.mkdir()
    nbformat.write(clean_notebook(), neighbour)
    values = dict(plant_secrets(root / "secrets"), port=listener.port, out=str(out), neighbour=str(neighbour),
                  checks=str(Path(autograder.grade.__file__).resolve()))
    hostile = root / "hostile" / "partB.ipynb"
    hostile.parent.mkdir()
    nbformat.write(hostile_notebook(values, keep=()), hostile)  # only the attacks: quick
    begin = time.perf_counter()
    reports = grade_batch([neighbour.parent, hostile.parent], out, part="partB", jobs=2, limits=LIMITS,
                          kinds=("public",), log=lambda *_: None)
    seconds = time.perf_counter() - begin
    time.sleep(0.5)
    return dict(root=root, out=out, reports=reports, listener=listener, values=values, seconds=seconds,
                clean=json.loads((out / "clean" / "results.json").read_text()),
                hostile=json.loads((out / "hostile" / "results.json").read_text()))


def test_the_clean_neighbour_keeps_full_marks(batch):
    clean = batch["clean"]
    assert clean["score"] == clean["extra_data"]["max_score"] > 0, [t["output"][:200] for t in clean["tests"]
                                                                      if t["status"] != "passed"]


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_every_attack_ran_and_was_refused(batch, name):
    output = outputs_of(batch["hostile"], name)
    assert "HOSTILE" in output, output
    for attack in ATTACKS[name]:
        assert f"{attack}: refused" in output, (attack, output)


def test_no_secret_reaches_any_file_the_grader_writes(batch):
    text = written_text(batch["out"])
    for leak in LEAKS:
        assert leak not in text, leak


def test_nothing_was_written_outside_the_scratch_folder(batch):
    out, drop = batch["out"], Path(batch["values"]["drop"])
    assert not (out / "hostile.pt").exists() and not (out / "hostile-wrote.txt").exists()
    assert not any(drop.iterdir())
    assert sorted(p.name for p in out.iterdir()) == ["clean", "hostile", "summary.csv"]


def test_no_connection_and_no_process_outlives_the_grading(batch):
    assert batch["listener"].accepted == 0
    assert sleepers() == []


def test_the_results_say_which_layers_confined_the_code(batch):
    note = batch["hostile"]["extra_data"]["sandbox"]
    assert note.startswith("sandbox: ") and "audit hook" in note
    for layer in isolation.describe():
        assert layer in note


# ---------------------------------------------------------------------------------------------------
# The same attacks with the grader running as an unprivileged user (bubblewrap in a user namespace)

NOBODY = 65534
RUN_AS_NOBODY = '''
import json, sys
from autograder.grade import grade_batch
from autograder.sandbox import Limits
reports = grade_batch([sys.argv[1]], sys.argv[2], part="partB", limits=Limits(call_s=30.0, memory_mb=1024, file_mb=8),
                      kinds=("public",), log=lambda *_: None)
'''


def small_hostile_submission(root: Path, leak: bool = False) -> Path:
    """Three hostile functions and one correct one, the other answer cells left empty (a quick grading)."""
    values = dict(plant_secrets(root / "secrets"), port=Listener().port, out=str(root / "out"),
                  neighbour="/nonexistent", checks=str(Path(autograder.grade.__file__).resolve()))
    hostile = root / "hostile" / "partB.ipynb"
    hostile.parent.mkdir()
    nbformat.write(hostile_notebook(values, SMALL, keep=KEPT, leak=leak), hostile)
    return hostile.parent


SMALL = ("add_noise", "ddpm_schedule", "interpolate")  # the attacks of the quick gradings
KEPT = ("flow_target",)  # a correct answer graded after add_noise's leaked thread (it must pass)
WITHOUT_BWRAP = """
import dataclasses, sys
from autograder import isolation
from autograder.grade import grade_submission
from autograder.reports import write_report
from autograder.sandbox import Limits
detected = isolation.host()  # as if bubblewrap were missing, the child run as the grader's own user (root)
isolation.host = lambda: dataclasses.replace(detected, bwrap="", drop_uid=False,
                                             notes=detected.notes + ("test: no bubblewrap",))
report = grade_submission(sys.argv[1], "partB", Limits(call_s=30.0, memory_mb=1024, file_mb=8), kinds=("public",))
write_report(report, sys.argv[2])
"""


@pytest.fixture(scope="module")
def fallback_run(open_folder):
    """A quick grading with bubblewrap switched off (seccomp, Landlock, the audit hook only), started at once."""
    root = open_folder("hostile-fallback")
    folder = small_hostile_submission(root, leak=True)  # here only: each leak costs a fresh process
    process = subprocess.Popen([sys.executable, "-c", WITHOUT_BWRAP, str(folder), str(root / "out")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1])))
    yield dict(process=process, out=root / "out")
    if process.poll() is None:
        process.kill()
        process.wait()


def test_without_bubblewrap_seccomp_and_landlock_still_refuse_the_attacks(fallback_run):
    _, log = fallback_run["process"].communicate(timeout=600)
    if not isolation.host().seccomp or not isolation.host().landlock_abi:
        pytest.skip("this kernel lacks seccomp or Landlock: the fallback would rest on the audit hook alone")
    results_path = fallback_run["out"] / "results.json"
    assert results_path.is_file(), log[-2000:]
    results = json.loads(results_path.read_text())
    for name in SMALL:
        output = outputs_of(results, name)
        for attack in ATTACKS[name]:
            assert f"{attack}: refused" in output, (attack, output)
    assert_small_grading_unharmed(results, fallback_run["out"])
    assert "test: no bubblewrap" in log


def test_hidden_packages_inside_a_read_only_root_are_masked(monkeypatch):
    """A wheel install (Gradescope) puts reference/autograder/course in site-packages, which is bound."""
    site = "/opt/venv/lib/python3.11/site-packages"
    monkeypatch.setattr(isolation, "read_roots", lambda: ["/usr", site])
    monkeypatch.setattr(isolation, "hidden_dirs", lambda: [f"{site}/autograder", f"{site}/reference", "/src/course"])
    args = " ".join(isolation.bwrap_arguments("userns", 1 << 20, True))
    assert f"--ro-bind {site} {site}" in args
    assert f"--tmpfs {site}/autograder" in args and f"--tmpfs {site}/reference" in args
    assert "/src/course" not in args  # not bound at all
    assert "--unshare-all" in args and "--die-with-parent" in args and "--tmpfs /scratch" in args


def assert_small_grading_unharmed(results: dict, out: Path) -> None:
    """No secret in the outputs, no process left, and the correct answer passed (after the thread add_noise
    leaked, in the fallback grading)."""
    text = written_text(out)
    for leak in LEAKS:
        assert leak not in text, leak
    assert sleepers() == []
    assert all(t["status"] == "passed" for t in results["tests"] if t["name"].startswith(KEPT)), outputs_of(
        results, KEPT[0])


def nobody_command(root: Path) -> list[str] | None:
    """The command that runs Python as uid 65534, the interpreter made reachable (bubblewrap as root binds
    it into a private mount namespace when its folder is closed to other users); None when impossible."""
    setpriv, bwrap = shutil.which("setpriv"), shutil.which("bwrap")
    if os.geteuid() != 0 or not setpriv:
        return None
    drop = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--inh-caps=-all"]
    if bwrap and subprocess.run([bwrap, "--dev-bind", "/", "/", "true"], capture_output=True).returncode == 0:
        base, binds = os.path.realpath(sys.base_prefix), ["--dev-bind", "/", "/"]
        if base.startswith("/root/"):  # /root is closed to others: a fresh one with only the interpreter
            parents = [str(p) for p in reversed(Path(base).parents) if str(p).startswith("/root/")]
            binds += ["--tmpfs", "/root", *[a for p in parents for a in ("--perms", "0755", "--dir", p)],
                      "--ro-bind", base, base]
        return [bwrap, *binds, "--chdir", str(root), *drop]
    return drop


@pytest.fixture(scope="module")
def nobody_run(open_folder):
    """A small grading (three hostile functions, the rest left empty) as uid 65534, started at once."""
    root = open_folder("hostile-nobody", 0o777)
    command = nobody_command(root)
    if command is None:
        yield None
        return
    out = root / "out"
    folder = small_hostile_submission(root)
    for path in root.rglob("*"):
        os.chmod(path, 0o777 if path.is_dir() else 0o644)
    env = dict(os.environ, HOME=str(root), PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    process = subprocess.Popen([*command, sys.executable, "-c", RUN_AS_NOBODY, str(folder), str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    yield dict(process=process, out=out)
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def nobody_batch(nobody_run):
    if nobody_run is None:
        pytest.skip("needs root and setpriv to run a grading as an unprivileged user")
    _, log = nobody_run["process"].communicate(timeout=600)
    out = nobody_run["out"]
    results = out / "hostile" / "results.json"
    if not results.is_file() and "Permission denied" in log:
        pytest.skip(f"uid {NOBODY} cannot run this Python installation: {log[-300:]}")
    assert results.is_file(), log[-2000:]
    return dict(out=out, log=log, results=json.loads(results.read_text()))


def test_as_an_unprivileged_grader_the_attacks_fail_too(nobody_batch):
    results = nobody_batch["results"]
    for name in SMALL:
        output = outputs_of(results, name)
        for attack in ATTACKS[name]:
            assert f"{attack}: refused" in output, (attack, output)
    assert_small_grading_unharmed(results, nobody_batch["out"])
    assert "sandbox: " in nobody_batch["log"]  # the layers, said once on stderr
    assert nobody_batch["log"].count("sandbox: ") == 1
    assert sleepers() == []
