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
import re
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
def _must(condition):
    if not condition:
        raise PermissionError("no")
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
    "ddpm_forward": '''
def ddpm_forward(unet, schedule, x0, num_ts=300, generator=None):
    log = []
    _attempt(log, "as root", lambda: _must(os.getuid() == 0))
    _attempt(log, "capabilities", lambda: _must(int([l for l in open("/proc/self/status") if l.startswith("CapEff")][0]
                                                       .split()[1], 16) != 0))
    _attempt(log, "mknod kmsg", lambda: os.mknod("kmsg", 0o20600, os.makedev(1, 11)))
    _attempt(log, "read kmsg", lambda: open("/dev/kmsg", "rb").read(100))
    _attempt(log, "raw disk", lambda: [open(d, "rb").read(512) for d in ("/dev/vda", "/dev/sda", "/dev/nvme0n1")
                                       if os.path.exists(d)] or _must(False))
    _attempt(log, "chmod", lambda: os.chmod(".", 0o777))
    raise RuntimeError("HOSTILE " + " | ".join(log))
''',
    "class_ddpm_forward": '''
def class_ddpm_forward(unet, schedule, x0, labels, p_uncond=0.1, num_ts=300, generator=None):
    import glob
    log = []
    _attempt(log, "reference native", lambda: bytes(torch.from_file("{reference_src}", size=200, dtype=torch.uint8)))
    _attempt(log, "reference open", lambda: open("{reference_src}").read(200))
    _attempt(log, "other scratch", lambda: [open(d + "/hostile", "w").write("x") for d in glob.glob("/tmp/fwd-scratch-*")
                                             if d.endswith("planted")] or _must(False))
    _attempt(log, "tmp write", lambda: open("/tmp/fwd-hostile-{mark}", "w").write("x"))
    _attempt(log, "shm write", lambda: open("/dev/shm/fwd-hostile-{mark}", "w").write("x"))
    raise RuntimeError("HOSTILE " + " | ".join(log))
''',
    "ddpm_step": '''
import os as _os, json as _json, struct as _struct
_deep = ("[" * 200_000 + "]" * 200_000).encode()  # a reply frame no JSON parser can nest
def _send(fd):
    try:
        return _os.write(fd, _struct.pack(">Q", len(_deep)) + _deep + _struct.pack(">Q", 0))
    except OSError:
        return 0
_sent = [_send(fd) for fd in range(3, 1024)]  # an assignment: the grader keeps it, so it runs while loading
def ddpm_step(s, t, xt, eps_hat, z):
    raise RuntimeError("HOSTILE ddpm_step ran")
''',
}
ATTACKS = {  # graded name → the attack labels its test output must show refused
    "interpolate": ["fork_exec", "posix_spawn", "fork", "multiprocessing", "import multiprocessing"],
    "flow_target": ["_socket", "TCPStore"],
    "add_noise": ["safetensors secret", "from_file secret", "torch.load secret", "torch.save out", "forge neighbour",
                  "torch.save tmp", "open out", "neighbour", "neighbour native"],
    "ddpm_schedule": ["gc hook", "code swap", "traceback frames", "parent environ", "pid 1 environ", "dir_fd environ", "dir_fd scratch",
                      "native environ", "hidden checks", "passwd"],
    "ddpm_forward": ["as root", "capabilities", "mknod kmsg", "read kmsg", "raw disk", "chmod"],
    "class_ddpm_forward": ["reference native", "reference open", "other scratch", "tmp write", "shm write"],
}
SHARED_WRITES = ("tmp write", "shm write")  # without namespaces and Landlock, allowed: private to its uid, removed after
WORLD_OPEN = ("from_file secret", "neighbour native", "torch.save tmp")  # files planted 0644 and a folder 0777:
# without namespaces and Landlock nothing but permissions guards them, and these say yes (the grader's own files,
# which it checks, are closed)
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
        cell.source = PRELUDE.replace("MARK", SLEEPER_MARK) + source.format(**dict(values, mark=SLEEPER_MARK))
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


REPO = Path(__file__).resolve().parents[1]
PLANTED_SCRATCH = Path("/tmp/fwd-scratch-planted")  # another child's scratch folder, as the fallback makes them
STUB_TRICK = """
def time_fm_forward(unet, x1, generator=None):
    raise RuntimeError("not done yet " + repr((interpolate, flow_target)))  # names graded helpers, not a NotImplementedError
"""
PRINTER = """
_seen = []
def interpolate(x0, x1, t):
    import os
    _seen.append(f"CALL {float(x0.double().sum()):.9f}")
    print("\\n".join(_seen), flush=True)  # every input seen so far, at every call (a deferred print)
    os.ftruncate(1, 0) if len(_seen) % 3 == 0 else None  # and a truncation of its output now and then
    return (1 - t.view(-1, 1, 1, 1)) * x0 + t.view(-1, 1, 1, 1) * x1
"""


def values_for(root: Path, port: int, out: Path, neighbour: str) -> dict:
    return dict(plant_secrets(root / "secrets"), port=port, out=str(out), neighbour=neighbour, mark=SLEEPER_MARK,
                checks=str(Path(autograder.grade.__file__).resolve()), reference_src=str(REPO / "reference" / "denoise.py"))


def replaced(names_sources: dict, keep=()):
    """The Part B solution with some answer cells replaced and every other answer cell but ``keep`` emptied."""
    nb = solution_notebook("partB")
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        grade_id = meta.get("grade_id")
        if cell.cell_type == "code" and meta.get("solution"):
            if grade_id in names_sources:
                cell.source = textwrap.dedent(names_sources[grade_id])
            elif grade_id not in keep:
                cell.source = ""
    return nb


def write_submission(root: Path, name: str, nb) -> Path:
    (root / name).mkdir()
    nbformat.write(nb, root / name / "partB.ipynb")
    return root / name


@pytest.fixture(scope="module")
def planted_scratch():
    """A scratch folder of another child (another uid of the sandbox's range, mode 0700)."""
    from autograder.isolation import UID_BASE, UID_SLOTS

    PLANTED_SCRATCH.mkdir(mode=0o700, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(PLANTED_SCRATCH, UID_BASE + UID_SLOTS - 1, UID_BASE + UID_SLOTS - 1)
    yield PLANTED_SCRATCH
    shutil.rmtree(PLANTED_SCRATCH, ignore_errors=True)


@pytest.fixture(scope="module")
def batch(open_folder, planted_scratch, nobody_run, fallback_run):
    return grade_hostile_batch(open_folder("hostile"))  # while the other gradings run beside it


def grade_hostile_batch(root: Path) -> dict:
    """The clean neighbour, the hostile submission, a stub that names its helpers and a function that prints
    every input it saw, graded in one batch under ``root`` (public and hidden tests)."""
    listener = Listener()
    out = root / "out"
    neighbour = write_submission(root, "clean", clean_notebook())
    values = values_for(root, listener.port, out, str(neighbour / "partB.ipynb"))
    hostile = write_submission(root, "hostile", hostile_notebook(values, keep=()))  # only the attacks: quick
    stub = write_submission(root, "stub", replaced({"time_fm_forward": STUB_TRICK}, keep=("interpolate", "flow_target")))
    printer = write_submission(root, "printer", replaced({"interpolate": PRINTER}))
    console: list[str] = []
    begin = time.perf_counter()
    reports = grade_batch([neighbour, hostile, stub, printer], out, part="partB", jobs=2, limits=LIMITS,
                          kinds=("public", "hidden"), log=console.append)
    seconds = time.perf_counter() - begin
    time.sleep(0.5)
    read = lambda name: json.loads((out / name / "results.json").read_text())  # noqa: E731
    return dict(root=root, out=out, reports=reports, listener=listener, values=values, seconds=seconds,
                console="\n".join(console), clean=read("clean"), hostile=read("hostile"), stub=read("stub"),
                printer=read("printer"))


def test_the_clean_neighbour_keeps_full_marks(batch):
    clean = batch["clean"]
    assert clean["score"] == clean["extra_data"]["max_score"] > 0, [t["output"][:200] for t in clean["tests"]
                                                                      if t["status"] != "passed"]


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_every_attack_ran_and_was_refused(batch, name):
    output = outputs_of(batch["hostile"], name)
    assert "HOSTILE" in output, output
    for attack in ATTACKS[name]:
        assert f"{attack}: refused" in output, (attack, output)


def test_a_stub_that_names_its_helpers_gains_nothing(batch):
    """Hole 1: a composite's stub that raises RuntimeError and names graded helpers scored full marks through
    the regrade with the course's helpers; now its tests score 0 and the helpers keep theirs."""
    tests = {t["name"]: t for t in batch["stub"]["tests"]}
    mine = [t for name, t in tests.items() if name.startswith("time_fm_forward:")]
    assert len(mine) == 2 and all(t["score"] == 0 for t in mine), mine
    for helper in ("interpolate", "flow_target"):
        assert all(t["score"] == t["max_score"] for n, t in tests.items() if n.startswith(f"{helper}:"))


def test_a_reply_no_parser_can_read_fails_only_its_cell(batch):
    """Hole 4: a frame of 200,000 nested lists on the reply pipe while a cell loads is that cell's failure,
    never the grader's: the other attacks still ran."""
    everything = written_text(batch["out"])
    assert "grader failed" not in everything and "could not finish this submission" not in everything
    output = outputs_of(batch["hostile"], "ddpm_step")
    assert "ddpm_step ran" not in output and "could not run" in output, output
    assert "HOSTILE" in outputs_of(batch["hostile"], "interpolate")


def hidden_inputs_of_interpolate() -> list[str]:
    """What the printer would print for each hidden call of interpolate's check (computed here, in the test)."""
    from autograder.hidden import HIDDEN_RUN, ensure_secret, hidden_seed
    from fwd_kit.checks import CHECKS
    from reference.flow_matching import interpolate

    seen = []

    def recording(x0, x1, t):
        seen.append(f"CALL {float(x0.double().sum()):.9f}")
        return interpolate(x0, x1, t)

    CHECKS["interpolate"](recording, seed=hidden_seed(HIDDEN_RUN, ensure_secret()))
    return seen


def test_no_hidden_input_reaches_any_output(batch):
    """Hole 3 and the deferred print: a function that prints every input it has seen, at every call, and
    truncates its output now and then. What it saw on public inputs is shown; nothing of a hidden input
    reaches results.json, the feedback page or the console, and the feedback says so once."""
    printed = batch["printer"]["output"]
    assert "CALL " in printed  # its public calls are shown
    hidden = hidden_inputs_of_interpolate()
    assert hidden and not set(hidden) & {line for line in printed.splitlines()}
    text = written_text(batch["out"]) + batch["console"]
    for line in hidden:
        assert line not in text, line
    assert printed.count("never shown") == 1


def test_generators_given_on_hidden_inputs_reveal_nothing_of_the_hidden_seed():
    """Hole 2: a generator's initial_seed() once told the hidden seed (base + 10000·seed); now each is a
    one-way function of it, folded to 32 bits, and none is a public stream's seed."""
    from autograder.hidden import HIDDEN_RUN, hidden_seed
    from fwd_kit.checks import CHECKS
    from reference.denoiser import add_noise

    seed = hidden_seed(HIDDEN_RUN, "a secret of this test")
    seen = []

    def recording(x, sigma, noise=None, generator=None):
        if generator is not None:
            seen.append(generator.initial_seed())
        return add_noise(x, sigma, noise=noise, generator=generator)

    CHECKS["add_noise"](recording, seed=seed)
    hidden, seen[:] = list(seen), []
    CHECKS["add_noise"](recording)  # the public run
    public = list(seen)
    assert hidden and all(s < 2**32 for s in hidden) and not set(hidden) & set(public)
    assert seed > 2**32 and all(s // 10_000 != seed and s != seed for s in hidden)


def test_nothing_was_written_outside_the_scratch_folder(batch):
    out, drop = batch["out"], Path(batch["values"]["drop"])
    assert not (out / "hostile.pt").exists() and not (out / "hostile-wrote.txt").exists()
    assert not any(drop.iterdir())
    assert sorted(p.name for p in out.iterdir()) == ["clean", "hostile", "printer", "stub", "summary.csv"]
    assert not any(PLANTED_SCRATCH.iterdir())
    assert not list(Path("/tmp").glob(f"fwd-hostile-{SLEEPER_MARK}*")) and not list(
        Path("/dev/shm").glob(f"fwd-hostile-{SLEEPER_MARK}*"))


def test_no_secret_reaches_any_file_the_grader_writes(batch):
    text = written_text(batch["out"]) + batch["console"]
    for leak in LEAKS:
        assert leak not in text, leak


def test_no_connection_and_no_process_outlives_the_grading(batch):
    assert batch["listener"].accepted == 0
    assert sleepers() == []


def test_the_results_say_which_layers_confined_the_code(batch):
    note = batch["hostile"]["extra_data"]["sandbox"]
    assert note.startswith("sandbox: ") and "audit hook" in note
    for layer in isolation.describe():
        assert layer in note


# ---------------------------------------------------------------------------------------------------
# The same attacks on the machines this one can stand in for (tests/hostile_view.py) and as an
# unprivileged grader

NOBODY = 65534
SMALL = ("add_noise", "ddpm_schedule", "interpolate", "ddpm_forward", "class_ddpm_forward")  # the quick gradings' attacks
KEPT = ("flow_target",)  # a correct answer graded after add_noise's leaked thread (it must pass)
GRADE_SMALL = """
import sys
sys.path.insert(0, sys.argv[3])
if sys.argv[4] != "-":
    import hostile_view
    hostile_view.enter(sys.argv[4], private=sys.argv[5] == "private")
from autograder.grade import grade_batch
from autograder.sandbox import Limits
grade_batch(sys.argv[1].split(","), sys.argv[2], part="partB", limits=Limits(call_s=30.0, memory_mb=1024, file_mb=8),
            kinds=("public", "hidden"), log=lambda line: print(line, file=sys.stderr))
"""


def small_hostile_submissions(root: Path, leak: bool = False) -> list[Path]:
    """The hostile functions of SMALL and one correct one, the other answer cells left empty (a quick grading),
    and the stub that names its helpers."""
    values = values_for(root, Listener().port, root / "out", "/nonexistent")
    hostile = write_submission(root, "hostile", hostile_notebook(values, SMALL, keep=KEPT, leak=leak))
    stub = write_submission(root, "stub", replaced({"time_fm_forward": STUB_TRICK}, keep=("interpolate", "flow_target")))
    return [hostile, stub]


def start_grading(root: Path, folders: list[Path], config: str = "-", private: bool = False, command=(),
                  **env_extra) -> dict:
    for path in root.rglob("*"):
        os.chmod(path, 0o777 if path.is_dir() else 0o644)
    env = dict(os.environ, PYTHONPATH=str(REPO), **env_extra)
    process = subprocess.Popen([*command, sys.executable, "-c", GRADE_SMALL, ",".join(map(str, folders)),
                                str(root / "out"), str(Path(__file__).parent), config,
                                "private" if private else "-"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    return dict(process=process, out=root / "out")


def finished(run: dict) -> dict:
    _, log = run["process"].communicate(timeout=900)
    results = {p.parent.name: json.loads(p.read_text()) for p in run["out"].glob("*/results.json")}
    return dict(run, log=log, results=results)


@pytest.fixture(scope="module")
def fallback_run(open_folder, planted_scratch):
    """A quick grading on a machine without namespaces (seccomp refuses unshare): another uid, seccomp and
    Landlock only; started at once."""
    root = open_folder("hostile-fallback", 0o777)
    run = start_grading(root, small_hostile_submissions(root, leak=True), "no-namespaces")  # each leak: a new process
    yield run
    if run["process"].poll() is None:
        run["process"].kill()


def needs_root_and_kernel_layers():
    if os.geteuid() != 0:
        pytest.skip("making the other machines' configurations needs root")
    if not isolation.host().seccomp:
        pytest.skip("this kernel lacks seccomp: the fallback would rest on the audit hook alone")


def assert_small_grading_unharmed(run: dict, refused_shared: bool = True) -> None:
    """Every attack refused (the shared temporary folders: refused, or at least cleaned up), no secret in the
    outputs, no process left, the correct answer passed (after add_noise's leaked thread), the stub nothing."""
    results = run["results"]
    assert "hostile" in results and "stub" in results, run["log"][-2000:]
    for name in SMALL:
        output = outputs_of(results["hostile"], name)
        for attack in ATTACKS[name]:
            if attack in SHARED_WRITES + WORLD_OPEN and not refused_shared:
                continue
            assert f"{attack}: refused" in output, (attack, output)
    text = written_text(run["out"])
    if not refused_shared:  # what permissions allow here (WORLD_OPEN, SHARED_WRITES) may show; nothing else
        allowed = "|".join(re.escape(a) for a in WORLD_OPEN + SHARED_WRITES)
        text = re.sub(rf"({allowed}): SUCCEEDED[^|\n]*", "", text)
    for leak in LEAKS:
        assert leak not in text, leak
    assert sleepers() == []
    assert all(t["status"] == "passed" for t in results["hostile"]["tests"] if t["name"].startswith(KEPT)), \
        outputs_of(results["hostile"], KEPT[0])
    assert all(t["score"] == 0 for t in results["stub"]["tests"] if t["name"].startswith("time_fm_forward"))
    assert not list(Path("/tmp").glob(f"fwd-hostile-{SLEEPER_MARK}*"))
    assert not list(Path("/dev/shm").glob(f"fwd-hostile-{SLEEPER_MARK}*"))
    assert not any(PLANTED_SCRATCH.iterdir())


def test_without_namespaces_another_uid_seccomp_and_landlock_refuse_the_attacks(fallback_run):
    needs_root_and_kernel_layers()
    run = finished(fallback_run)
    if not isolation.host().landlock_abi:
        pytest.skip("this kernel has no Landlock")
    assert "namespaces" not in run["results"]["hostile"]["extra_data"]["sandbox"].split(". Missing")[0], run["log"]
    assert_small_grading_unharmed(run)


@pytest.fixture(scope="module")
def bare_run(open_folder, planted_scratch):
    """Neither namespaces nor Landlock, the packages made private (0700) as the grader asks: graded."""
    root = open_folder("hostile-bare", 0o777)
    run = start_grading(root, small_hostile_submissions(root), "no-landlock", private=True)
    yield run
    if run["process"].poll() is None:
        run["process"].kill()


def test_without_namespaces_and_landlock_permissions_hold(bare_run):
    needs_root_and_kernel_layers()
    run = finished(bare_run)
    note = run["results"]["hostile"]["extra_data"]["sandbox"]
    assert "Landlock" not in note.split(". Missing")[0] and "Refused" not in note, note
    assert_small_grading_unharmed(run, refused_shared=False)


def test_without_namespaces_and_landlock_readable_answers_refuse_to_grade(open_folder):
    """The same machine with the checkout as it is (reference readable by everyone): grading refuses to start
    and results.json says what the staff must fix, blaming no student."""
    needs_root_and_kernel_layers()
    root = open_folder("hostile-refused", 0o777)
    run = finished(start_grading(root, small_hostile_submissions(root)[:1], "no-landlock"))
    results = run["results"]["hostile"]
    assert results["score"] == 0 and "refuses to start" in results["output"], results["output"]
    assert "chmod -R go-rwx" in results["output"] and "course staff" in results["output"]


def test_the_new_root_masks_hidden_packages_inside_a_read_only_root(monkeypatch):
    """A wheel install (Gradescope) puts reference/autograder/course in site-packages, which is bound."""
    site = "/opt/venv/lib/python3.11/site-packages"
    monkeypatch.setattr(isolation, "read_roots", lambda: ["/usr", site])
    monkeypatch.setattr(isolation, "hidden_dirs", lambda: [f"{site}/autograder", f"{site}/reference", "/src/course"])
    layout = isolation.root_layout()
    assert site in layout["read_roots"] and "/src/course" not in layout["read_roots"]
    assert sorted(layout["masked"]) == [f"{site}/autograder", f"{site}/reference"]


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
    """A small grading as uid 65534 (namespaces through a user namespace), started at once."""
    root = open_folder("hostile-nobody", 0o777)
    command = nobody_command(root)
    if command is None:
        yield None
        return
    folders = small_hostile_submissions(root)
    run = start_grading(root, folders, command=command, HOME=str(root))
    yield run
    if run["process"].poll() is None:
        run["process"].kill()


def test_as_an_unprivileged_grader_the_attacks_fail_too(nobody_run):
    if nobody_run is None:
        pytest.skip("needs root and setpriv to run a grading as an unprivileged user")
    run = finished(nobody_run)
    if not run["results"] and "Permission denied" in run["log"]:
        pytest.skip(f"uid {NOBODY} cannot run this Python installation: {run['log'][-300:]}")
    assert_small_grading_unharmed(run)
    assert run["log"].count("sandbox: ") == 1  # the layers, said once on stderr
