"""What the kernel of this machine offers to isolate the student's process, and the command that uses it.

The student's process (:mod:`fwd_kit.grading.child`) is confined by layers, strongest first; each one
that this machine lacks is reported once (:func:`notes`) and the next ones still apply:

1. **bubblewrap** — its own mount, PID, network, IPC and UTS namespaces: the filesystem holds only the
   Python installation, its libraries and the student kit (read-only; the packages ``reference``,
   ``autograder`` and ``course`` are absent or masked), ``/proc`` of its own PID namespace, a minimal
   ``/dev`` and a size-capped ``tmpfs`` scratch folder, the only writable place. No network at all; no
   process of the submission outlives it (``--die-with-parent``, and the PID namespace dies with it).
   As root, bwrap runs privileged and the child drops to :data:`SANDBOX_UID` with ``setpriv``; otherwise
   bwrap makes an unprivileged user namespace.
2. **another uid** (grader run as root) — the child runs as :data:`SANDBOX_UID`, so the grader's files,
   its environment (``/proc/<pid>/environ``) and other submissions are closed to it by permission.
3. **seccomp** and **Landlock**, installed by the child itself before any student code runs (here we only
   detect them): no exec, fork, sockets, ptrace; files only under the read-only roots and the scratch.
4. **rlimits** and the **audit hook** (always): memory, CPU, file size; friendly messages.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import os
import shutil
import site
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SANDBOX_UID = 65534  # "nobody": the uid and gid the child runs as when the grader is root
SCRATCH = "/scratch"  # the child's writable folder inside bubblewrap (a tmpfs)
HIDDEN_PACKAGES = ("reference", "autograder", "course")  # hold the answers and hidden checks: never visible
KIT_PACKAGE = "fwd_kit"  # the student kit: the only package of ours the child imports
SYSTEM_ROOTS = ("/usr", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
                "/sys/devices/system/cpu")  # read-only system paths the interpreter and torch use
LINKED_TOP = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")  # symlinks into /usr on merged systems
PROBE_TIMEOUT_S = 20.0  # seconds a trial start of a wrapped interpreter may take


@dataclass(frozen=True)
class Host:
    """The layers this machine offers (detected once, see :func:`host`)."""

    root: bool  # the grader runs as root
    bwrap: str  # "" when bubblewrap is unusable, else "privileged" (as root) or "userns"
    bwrap_path: str  # the bwrap executable
    bwrap_size: bool  # bwrap supports --size (a capped scratch tmpfs)
    drop_uid: bool  # the child runs as SANDBOX_UID
    seccomp: bool  # libseccomp loads and the kernel filters system calls
    landlock_abi: int  # Landlock ABI version, 0 when absent
    notes: tuple[str, ...]  # each missing layer, with why and what applies instead


# ---------------------------------------------------------------------------------------------------
# What the child may see


def read_roots() -> list[str]:
    """Paths the child may read: the interpreter and its libraries, the kit's package, system libraries."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, kit_dir(), *SYSTEM_ROOTS}
    roots |= {p for p in site.getsitepackages() + sys.path if p and ("site-packages" in p or "dist-packages" in p)}
    roots |= {str(Path(p).parent) for p in (sys.executable, os.path.realpath(sys.executable))}
    return sorted(r for r in {os.path.abspath(r) for r in roots} if os.path.exists(r))


def kit_dir() -> str:
    """The folder of the student kit package (in the checkout with an editable install)."""
    spec = importlib.util.find_spec(KIT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the package {KIT_PACKAGE} is not installed: the student's process needs it")
    return os.path.abspath(list(spec.submodule_search_locations)[0])


def hidden_dirs() -> list[str]:
    """Folders of the packages the child must never see (wherever they are installed)."""
    found = []
    for name in HIDDEN_PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        for location in (spec.submodule_search_locations or []) if spec else []:
            found.append(os.path.abspath(location))
    return found


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _outermost(paths) -> list[str]:
    """``paths`` without those inside another one of them."""
    paths = sorted(set(paths), key=len)
    kept: list[str] = []
    for p in paths:
        if not any(_inside(p, k) for k in kept):
            kept.append(p)
    return sorted(kept)


# ---------------------------------------------------------------------------------------------------
# The bubblewrap command


def bwrap_arguments(mode: str, scratch_bytes: int, size_option: bool) -> list[str]:
    """bwrap's options (without the command): namespaces, read-only roots, masks, ``/proc``, ``/dev``,
    the scratch tmpfs. ``mode``: "privileged" (bwrap runs as root) or "userns"."""
    if mode == "privileged":
        args = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]  # for setpriv only
    else:
        args = ["--unshare-all"]  # user namespace too; bwrap drops every capability of the child
    args += ["--die-with-parent", "--new-session"]
    roots = _outermost(r for r in read_roots() if not any(_inside(r, top) for top in LINKED_TOP))
    made: set[str] = set()
    for root in roots:  # parents created 0755, else privileged bwrap makes them 0700 (closed to the uid)
        for parent in reversed(Path(root).parents):
            p = str(parent)
            if p != "/" and p not in made and not any(_inside(p, r) for r in roots):
                args += ["--perms", "0755", "--dir", p]
                made.add(p)
    for top in LINKED_TOP:
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for root in roots:
        args += ["--ro-bind", root, root]
    for hidden in hidden_dirs():
        if any(_inside(hidden, r) for r in roots):
            args += ["--tmpfs", hidden]  # e.g. a wheel install: the package sits in site-packages
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += (["--size", str(scratch_bytes)] if size_option else []) + ["--perms", "1777", "--tmpfs", SCRATCH]
    args += ["--remount-ro", "/", "--chdir", SCRATCH]
    return args


def wrap(command: list[str], scratch_bytes: int) -> tuple[list[str], dict]:
    """The command that runs ``command`` (an interpreter and its arguments) in the isolation this machine
    offers, and extra keyword arguments for :class:`subprocess.Popen` (the uid to run as)."""
    h = host()
    popen: dict = {}
    if h.drop_uid and h.bwrap != "privileged":
        popen = dict(user=SANDBOX_UID, group=SANDBOX_UID, extra_groups=[])
    if not h.bwrap:
        return list(command), popen
    inner = list(command)
    if h.bwrap == "privileged":
        inner = [shutil.which("setpriv") or "setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}",
                 "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", *inner]
    return [h.bwrap_path, *bwrap_arguments(h.bwrap, scratch_bytes, h.bwrap_size), *inner], popen


# ---------------------------------------------------------------------------------------------------
# Detection


def _trial(argv: list[str], **popen) -> bool:
    """Whether ``argv`` starts and exits 0 (a trial start of a confined interpreter)."""
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              timeout=PROBE_TIMEOUT_S, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                              cwd="/", **popen)
    except (OSError, subprocess.SubprocessError, ValueError):
        return False
    return done.returncode == 0


def _seccomp_available() -> bool:
    try:
        ctypes.CDLL("libseccomp.so.2")
    except OSError:
        return False
    try:
        with open("/proc/self/status") as f:
            return any(line.startswith("Seccomp:") for line in f)
    except OSError:
        return False


def _landlock_abi() -> int:
    if not sys.platform.startswith("linux"):
        return 0
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        abi = libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))  # landlock_create_ruleset, VERSION
    except (OSError, AttributeError):
        return 0
    return max(0, int(abi))


BOOTSTRAP = ("import sys; sys.path.append(sys.argv[1]); from fwd_kit.grading.child import main; "
             "sys.exit(main(sys.argv[2:]))")  # the kit may sit in a checkout (editable install) off sys.path


def child_command(arguments: list[str]) -> list[str]:
    """The interpreter command of the student's process: isolated mode (no environment, no user site),
    the kit's parent folder appended to ``sys.path`` (only the kit is visible there under bubblewrap)."""
    return [sys.executable, "-I", "-c", BOOTSTRAP, str(Path(kit_dir()).parent), *arguments]


def _probe_command() -> list[str]:
    """A trial interpreter that finds the kit as the child will, and starts no grading."""
    return [sys.executable, "-I", "-c", "import sys; sys.path.append(sys.argv[1]); import fwd_kit.grading",
            str(Path(kit_dir()).parent)]


@functools.lru_cache(maxsize=1)
def host() -> Host:
    """Detect, once per grader process, which layers this machine offers."""
    root = os.geteuid() == 0
    notes: list[str] = []
    bwrap_path = shutil.which("bwrap") or ""
    size_option = False
    if bwrap_path:
        try:
            size_option = "--size" in subprocess.run([bwrap_path, "--help"], capture_output=True, text=True,
                                                     timeout=PROBE_TIMEOUT_S).stdout
        except (OSError, subprocess.SubprocessError):
            bwrap_path = ""
    mode = ""
    drop_uid = False
    nobody = dict(user=SANDBOX_UID, group=SANDBOX_UID, extra_groups=[])
    if bwrap_path:
        setpriv = shutil.which("setpriv")
        bwrap_argv = lambda m: [bwrap_path, *bwrap_arguments(m, 1 << 20, size_option)]  # noqa: E731
        if root and setpriv and _trial(bwrap_argv("privileged") + [setpriv, f"--reuid={SANDBOX_UID}",
                                       f"--regid={SANDBOX_UID}", "--clear-groups", *_probe_command()]):
            mode, drop_uid = "privileged", True
        elif _trial(bwrap_argv("userns") + _probe_command(), **(nobody if root else {})):
            mode, drop_uid = "userns", root
        else:
            notes.append("bubblewrap is installed but cannot make namespaces here (no user namespaces, or a "
                         "container that forbids them): no private filesystem, PID or network namespace")
    else:
        notes.append("bubblewrap (bwrap) is not installed: no private filesystem, PID or network namespace "
                     "(apt-get install bubblewrap)")
    if root and not drop_uid:
        drop_uid = _trial(_probe_command(), **nobody)
        if not drop_uid:
            notes.append(f"uid {SANDBOX_UID} cannot run this Python installation: the student's process runs as "
                         "root, confined by seccomp, Landlock and the audit hook only")
    elif not root and not mode:
        notes.append("the grader is not root: the student's process runs as the grader's own user")
    seccomp = _seccomp_available()
    if not seccomp:
        notes.append("seccomp is unavailable (libseccomp.so.2 missing or the kernel lacks it): exec, fork and "
                     "sockets are refused by the audit hook only, which native code bypasses")
    abi = _landlock_abi()
    if not abi and not mode:
        notes.append("the kernel has no Landlock: files outside the scratch folder are guarded by "
                     "permissions and the audit hook only")
    if drop_uid and not mode and not abi:
        readable = [d for d in hidden_dirs() if os.stat(d).st_mode & 0o005]
        if readable:
            notes.append(f"{', '.join(readable)} can be read by uid {SANDBOX_UID} (no bubblewrap, no Landlock "
                         "here): chmod -R o-rwx them")
    if not size_option and mode:
        notes.append("this bwrap has no --size option: the scratch tmpfs is capped by memory only")
    return Host(root, mode, bwrap_path, size_option, drop_uid, seccomp, abi, tuple(notes))


def describe() -> list[str]:
    """The layers that confine the student's process on this machine, for logs and tests."""
    h = host()
    layers = []
    if h.bwrap:
        layers.append(f"bubblewrap ({h.bwrap}: own mount, PID, network, IPC namespaces; read-only roots; "
                      "scratch tmpfs)")
    if h.drop_uid:
        layers.append(f"uid {SANDBOX_UID}")
    if h.seccomp:
        layers.append("seccomp (no exec, fork, sockets, ptrace)")
    if h.landlock_abi:
        layers.append(f"Landlock ABI {h.landlock_abi}")
    return layers + ["rlimits", "audit hook"]


def notes() -> list[str]:
    """What this machine lacks, each with what applies instead (empty where every layer is there)."""
    return list(host().notes)


_REPORTED: list[bool] = []  # whether the missing layers were logged in this process


def report_once(log=None) -> str:
    """Log the active and missing layers on stderr once per process; return the one-line note for results."""
    line = "sandbox: " + "; ".join(describe())
    missing = notes()
    if missing:
        line += ". Missing: " + "; ".join(missing)
    if not _REPORTED:
        _REPORTED.append(True)
        (log or (lambda text: print(text, file=sys.stderr, flush=True)))(line)
    return line


def mark_reported() -> None:
    """In a worker of a batch whose parent already logged the layers: do not log them again."""
    if not _REPORTED:
        _REPORTED.append(True)
