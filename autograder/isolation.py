"""What the kernel of this machine offers to isolate the student's process, detected once per grader process.

The student's process is forked by the grader's zygote (:mod:`autograder.zygote`) and confines itself
before it reads its first request, layer by layer, strongest first:

1. **namespaces** (:mod:`autograder.confine`) — its own mount, PID, network, IPC and UTS namespaces and a
   new root holding only the Python installation, its libraries and the student kit, read-only (the
   packages ``reference``, ``autograder`` and ``course`` masked), ``/proc`` of its own PID namespace, a
   minimal ``/dev`` and a size-capped ``/scratch``. As root directly; otherwise through a user namespace.
2. **another uid** (grader run as root) — each concurrent child its own uid (:func:`claim_uid`), no
   groups, no capabilities, ``no_new_privs``.
3. **seccomp** and **Landlock** (:mod:`fwd_kit.grading.kernel`): no exec, fork, sockets, ptrace, mknod,
   chmod; files read only under the read-only roots, written only in the scratch folder, no device nodes.
4. **rlimits** and the **audit hook** (always): memory, CPU, file size; friendly messages.

What may not happen: student code run as root or as the grader's own user, or, without namespaces and
Landlock, on a machine where the answers or the grader's files are readable by the child's uid. Then
:func:`refusal` says what the staff must fix and grading does not start (:func:`autograder.grade.grade_submission`
writes that line as the results).
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import importlib.util
import os
import site
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

UID_BASE = 63000  # the children's uids, when the grader is root: UID_BASE … UID_BASE + UID_SLOTS − 1
UID_SLOTS = 64  # at most this many children at once on one machine
UID_LOCKS = Path(tempfile.gettempdir()) / "fwd-sandbox-uids"  # a lock file per uid in use
SCRATCH = "/scratch"  # the child's writable folder inside its namespaces (a tmpfs)
HIDDEN_PACKAGES = ("reference", "autograder", "course")  # hold the answers and hidden checks: never visible
KIT_PACKAGE = "fwd_kit"  # the student kit: the only package of ours the child imports
SYSTEM_ROOTS = ("/usr", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/fonts",
                "/sys/devices/system/cpu")  # read-only system paths the interpreter and torch use
LINKED_TOP = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")  # symlinks into /usr on merged systems
PROBE_TIMEOUT_S = 30.0  # seconds a trial child may take to confine itself
NO_NAMESPACES_ENV = "FWD_SANDBOX_NO_NAMESPACES"  # "1": do not use namespaces (tests of the fallback)


@dataclass(frozen=True)
class Host:
    """The layers this machine offers (detected once, see :func:`host`)."""

    root: bool  # the grader runs as root
    namespaces: str  # "" when they cannot be made, else "privileged" (as root) or "userns"
    drop_uid: bool  # each child runs as a uid of its own (root only)
    seccomp: bool  # libseccomp loads and the kernel filters system calls
    landlock_abi: int  # Landlock ABI version, 0 when absent
    notes: tuple[str, ...]  # each missing layer, with why and what applies instead
    refusal: str = ""  # why grading must not start here ("" when it may)


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


def landlock_roots(roots: list[str], hidden: list[str]) -> list[str]:
    """``roots`` with every folder that holds a hidden package replaced by its other entries (Landlock can
    only allow, never carve out)."""
    result = []
    for root in roots:
        inner = [h for h in hidden if h.startswith(root.rstrip("/") + "/")]
        if not inner or not os.path.isdir(root):
            result.append(root)
            continue
        for entry in sorted(os.listdir(root)):
            path = os.path.join(root, entry)
            if path in inner:
                continue
            result += landlock_roots([path], inner) if any(h.startswith(path + "/") for h in inner) else [path]
    return result


def root_layout() -> dict:
    """The new root of a child with namespaces: the read-only binds, the symlinks, the masked packages."""
    roots = _outermost(r for r in read_roots() if not any(_inside(r, top) for top in LINKED_TOP))
    links = [[top, os.readlink(top)] for top in LINKED_TOP if os.path.islink(top)]
    binds = roots + [top for top in LINKED_TOP if os.path.isdir(top) and not os.path.islink(top)]
    masked = [h for h in hidden_dirs() if any(_inside(h, r) for r in binds)]
    return {"read_roots": binds, "links": links, "masked": masked}


# ---------------------------------------------------------------------------------------------------
# The children's uids


class UidClaim:
    """A uid of :data:`UID_BASE`'s range held (by a lock file) while one child lives; ``release()`` frees it."""

    def __init__(self, uid: int, fd: int):
        self.uid, self.fd = uid, fd

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def claim_uid(wait_s: float = 600.0) -> UidClaim:
    """A uid no other living child of this machine's graders uses (waits while all are taken)."""
    UID_LOCKS.mkdir(mode=0o700, exist_ok=True)
    end = time.monotonic() + wait_s
    while True:
        for slot in range(UID_SLOTS):
            fd = os.open(UID_LOCKS / str(slot), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return UidClaim(UID_BASE + slot, fd)
        if time.monotonic() > end:
            raise RuntimeError(f"all {UID_SLOTS} sandbox uids are in use")
        time.sleep(0.2)


# ---------------------------------------------------------------------------------------------------
# Detection


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
        from fwd_kit.grading.kernel import landlock_abi

        return landlock_abi()
    except (OSError, AttributeError):
        return 0


def probe_paths() -> list[str]:
    """What a child must be able to read after its confinement: the kit, the standard library, torch."""
    import torch

    return [kit_dir(), os.path.dirname(os.__file__), os.path.dirname(torch.__file__)]


def _trial(zygote, spec: dict) -> int | None:
    """Exit code of a trial child that confines itself as ``spec`` says and checks it can read what it needs."""
    from autograder.zygote import trial

    return trial(zygote, dict(spec, probe=probe_paths()), PROBE_TIMEOUT_S)


def _readable_by_others(path: str) -> bool:
    """Whether a uid that owns nothing could read ``path`` (every parent traversable, the file readable)."""
    p = Path(path).resolve()
    for parent in [*reversed(p.parents), p]:
        mode = parent.stat().st_mode
        if parent != p and not mode & 0o001:
            return False
    return bool(p.stat().st_mode & 0o004)


def grader_files() -> list[str]:
    """Files and folders of the grader that no child may read: the answers, the hidden checks, the secret."""
    from autograder.hidden import secret_file

    files = hidden_dirs()
    if secret_file().is_file():
        files.append(str(secret_file()))
    from autograder.expectations import CACHE_DIR

    stored = os.environ.get("FWD_GRADER_EXPECTATIONS")
    files += [p for p in (stored, str(CACHE_DIR)) if p and os.path.exists(p)]
    return files


@functools.lru_cache(maxsize=1)
def host() -> Host:
    """Detect, once per grader process, which layers this machine offers (trial children of the zygote)."""
    from autograder import zygote as zygotes

    root = os.geteuid() == 0
    notes: list[str] = []
    z = zygotes.get(diffusers=False)
    layout = dict(root_layout(), scratch_bytes=1 << 20)
    mode = ""
    if os.environ.get(NO_NAMESPACES_ENV) == "1":
        notes.append(f"namespaces switched off ({NO_NAMESPACES_ENV}=1)")
    else:
        claim = claim_uid() if root else None
        try:
            wanted = "privileged" if root else "userns"
            code = _trial(z, dict(layout, namespaces=wanted, uid=claim.uid if claim else None))
            if code == 0:
                mode = wanted
            else:
                notes.append("the kernel or the container refuses new namespaces (no unshare, no user namespaces): "
                             "no private filesystem, PID or network namespace")
        finally:
            if claim:
                claim.release()
    drop_uid = False
    if root:
        claim = claim_uid()
        scratch = tempfile.mkdtemp(prefix="fwd-probe-")
        os.chown(scratch, claim.uid, claim.uid)
        try:
            code = _trial(z, dict(namespaces=mode, uid=claim.uid, scratch=scratch, **(layout if mode else {})))
        finally:
            claim.release()
            os.rmdir(scratch)
        drop_uid = code == 0
        if not drop_uid:
            notes.append(f"uids {UID_BASE}… cannot read this Python installation or the kit (exit {code})")
    seccomp = _seccomp_available()
    if not seccomp:
        notes.append("seccomp is unavailable (libseccomp.so.2 missing or the kernel lacks it): exec, fork and "
                     "sockets are refused by the audit hook only, which native code bypasses")
    abi = _landlock_abi()
    if not abi:
        notes.append("the kernel has no Landlock: files outside the scratch folder are guarded by "
                     + ("the namespaces" if mode else "permissions") + " and the audit hook")
    refusal = ""
    if not mode and not drop_uid:
        who = "root" if root else "the grader's own user"
        fix = (f"make the Python installation and the kit readable by other users (chmod -R o+rX), so that "
               f"the student's process can run as uid {UID_BASE}…") if root else \
            "run the grader as root, or on a kernel that allows user namespaces"
        refusal = (f"the student's code would run as {who} here (no namespaces, no other uid): grading refuses to "
                   f"start. To fix: {fix}.")
    elif not mode and not abi:
        exposed = [f for f in grader_files() if _readable_by_others(f)]
        if exposed:
            refusal = (f"with neither namespaces nor Landlock here, {', '.join(exposed)} would be readable by the "
                       "student's process: grading refuses to start. To fix: chmod -R go-rwx them (or install "
                       "on a kernel with Landlock).")
    return Host(root, mode, drop_uid, seccomp, abi, tuple(notes), refusal)


def refusal() -> str:
    """Why grading must not start on this machine ("" when it may)."""
    return host().refusal


def describe() -> list[str]:
    """The layers that confine the student's process on this machine, for logs and tests."""
    h = host()
    layers = []
    if h.namespaces:
        layers.append(f"namespaces ({h.namespaces}: own mount, PID, network, IPC; read-only roots; scratch tmpfs)")
    if h.drop_uid:
        layers.append(f"a uid of its own ({UID_BASE}+), no capabilities")
    elif h.namespaces == "userns":
        layers.append("no capabilities")
    if h.seccomp:
        layers.append("seccomp (no exec, fork, sockets, ptrace, mknod, chmod)")
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
    if host().refusal:
        line += ". Refused: " + host().refusal
    if not _REPORTED:
        _REPORTED.append(True)
        (log or (lambda text: print(text, file=sys.stderr, flush=True)))(line)
    return line


def mark_reported() -> None:
    """In a worker of a batch whose parent already logged the layers: do not log them again."""
    if not _REPORTED:
        _REPORTED.append(True)
