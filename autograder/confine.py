"""Confinement of a student's process, applied by the process itself right after the zygote forked it
(:mod:`autograder.zygote`) and before it reads its first request. Everything is irreversible.

1. **Namespaces** (where the kernel allows them: as root, or through a user namespace) — its own mount,
   PID, network, IPC and UTS namespaces. The mount namespace gets a new root: a small tmpfs holding
   read-only binds of the Python installation, its libraries and the student kit (the packages
   ``reference``, ``autograder`` and ``course`` masked by empty tmpfs), ``/proc`` of its own PID
   namespace, ``/dev`` with null, zero, full, random and urandom only, and ``/scratch``, a size-capped
   tmpfs: the only writable place. The old root is detached; the network namespace has no interface up.
   The process forks twice: a waiter outside, and PID 1 of the namespace, which waits for the process
   that serves the grader (PID 2) and exits as it did.
2. **Another uid** (grader run as root) — each concurrent child gets its own uid from a small range
   (:func:`autograder.isolation.claim_uid`), so no two children reach each other's files; supplementary
   groups cleared, and every capability dropped (bounding set included), ``no_new_privs`` set.
3. umask 077 and ``oom_score_adj`` 1000: the kernel's first candidate when the container runs out of memory
   is the student's process, never the grader.

seccomp, Landlock, rlimits and the audit hook follow in :func:`fwd_kit.grading.harden.harden`. Only the
standard library and ``ctypes``: this module runs in a process that has not yet read any request.
"""

from __future__ import annotations

import ctypes
import os
import platform
import signal

CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS = 0x00020000, 0x02000000, 0x04000000
CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x08000000, 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC, MS_PRIVATE, MS_RELATIME = 1024, 2048, 4096, 16384, 1 << 18, 1 << 21
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 4, 24, 38
PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217}  # syscall numbers (glibc has no wrapper)
DEVICES = ("null", "zero", "full", "random", "urandom")  # bound into /dev from the host
ROOT_TMPFS = "mode=0755,size=1m"  # the new root: only mount points and symlinks live in it
CHILD_EXIT_BASE = 128  # the first fork exits with 128 + signal when the process in the namespace was killed


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _ok(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def mount(source, target, fstype, flags: int, data=None) -> None:
    enc = lambda v: None if v is None else str(v).encode()  # noqa: E731
    _ok(_libc().mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
        f"mount {target}")


def _flags_of(path: str) -> int:
    """The mount flags a read-only remount of a bind of ``path`` must keep (a user namespace cannot clear them)."""
    f = os.statvfs(path).f_flag
    keep = 0
    for st, ms in ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
                   (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME), (os.ST_RELATIME, MS_RELATIME)):
        if f & st:
            keep |= ms
    return keep


def _mount_point(path: str, like: str) -> None:
    """An empty directory or file at ``path`` (parents 0755) to bind ``like`` onto."""
    os.makedirs(os.path.dirname(path) or "/", mode=0o755, exist_ok=True)
    if os.path.isdir(like):
        os.makedirs(path, mode=0o755, exist_ok=True)
    elif not os.path.exists(path):
        with open(path, "w"):
            pass


def bind_read_only(source: str, target: str) -> None:
    _mount_point(target, source)
    mount(source, target, None, MS_BIND | MS_REC)
    mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | _flags_of(source))


def build_root(spec: dict) -> None:
    """Mount the new root at ``spec["root"]`` (see the module docstring) and pivot into it; cwd: /scratch."""
    new = spec["root"].rstrip("/")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", new, "tmpfs", MS_NOSUID | MS_NODEV, ROOT_TMPFS)
    for root in spec["read_roots"]:
        bind_read_only(root, new + root)
    for top, link in spec["links"]:
        os.symlink(link, new + top)
    for hidden in spec["masked"]:
        mount("tmpfs", new + hidden, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=0755")
    os.makedirs(new + "/dev", mode=0o755)
    mount("tmpfs", new + "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k")
    for name in DEVICES:
        _mount_point(f"{new}/dev/{name}", f"/dev/{name}")
        mount(f"/dev/{name}", f"{new}/dev/{name}", None, MS_BIND)
    for name, link in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                       ("stderr", "/proc/self/fd/2")):
        os.symlink(link, f"{new}/dev/{name}")
    os.makedirs(new + "/proc", mode=0o755)
    mount("proc", new + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.makedirs(new + "/scratch", mode=0o755)
    owner = f",uid={spec['uid']},gid={spec['uid']}" if spec.get("uid") is not None else ""
    mount("tmpfs", new + "/scratch", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
          f"mode={'0700' if owner else '1777'},size={int(spec['scratch_bytes'])}{owner}")
    os.makedirs(new + "/.old", mode=0o700)
    os.chdir(new)
    number = PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(f"pivot_root: unknown system call number on {platform.machine()}")
    _ok(_libc().syscall(number, b".", b".old"), "pivot_root")
    os.chdir("/")
    _ok(_libc().umount2(b"/.old", MNT_DETACH), "umount the old root")
    os.rmdir("/.old")
    mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chdir("/scratch")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def enter_namespaces(spec: dict, keep_fds: tuple) -> None:
    """New namespaces and root; returns in PID 2 of the new PID namespace (two waiters above it)."""
    libc = _libc()
    user = spec["namespaces"] == "userns"
    outer_uid, outer_gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | (CLONE_NEWUSER if user else 0)
    _ok(libc.unshare(flags), "unshare")
    if user:  # inside, the sandbox uid stands for the grader's own uid outside
        inner = spec.get("inner_uid", 65534)
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{inner} {outer_uid} 1")
        _write("/proc/self/gid_map", f"{inner} {outer_gid} 1")
    _wait_for_fork(keep_fds)  # returns in PID 1 of the new namespace
    try:
        _ok(libc.sethostname(b"sandbox", 7), "sethostname")
    except OSError:
        pass
    build_root(spec)
    _wait_for_fork(keep_fds)  # PID 1 stays a waiter: the kernel spares PID 1 even the signals it sends itself


def _wait_for_fork(keep_fds: tuple) -> None:
    """Fork; the parent closes ``keep_fds``, waits for the child and exits as it did (128 + signal when it was
    killed); the child returns, set to die with its parent."""
    pid = os.fork()
    if pid:
        for fd in keep_fds:
            os.close(fd)
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
        code = os.waitstatus_to_exitcode(status)
        os._exit(code if code >= 0 else CHILD_EXIT_BASE - code)
    _ok(_libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_privileges(uid: int | None) -> None:
    """Every capability gone (bounding set too), ``no_new_privs``; as root also another uid and no groups."""
    libc = _libc()
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 and ctypes.get_errno() == 22:  # EINVAL: no such cap
            break
    if uid is not None and os.getuid() == 0:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    header, data = CapHeader(0x20080522, 0), (CapData * 2)()  # version 3: two 32-bit words, all zero
    _ok(libc.capset(ctypes.byref(header), data), "capset")
    _ok(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")


def confine(spec: dict, keep_fds: tuple) -> None:
    """Apply layers 1–3 of the module docstring to this process (raises OSError when one cannot be)."""
    libc = _libc()
    os.setsid()
    _ok(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PDEATHSIG)")
    if os.getppid() != spec["zygote"]:  # the zygote died before the line above
        os._exit(1)
    _write("/proc/self/oom_score_adj", "1000")
    os.umask(0o022)
    if spec.get("namespaces"):
        enter_namespaces(spec, keep_fds)
    elif spec.get("scratch"):
        os.chdir(spec["scratch"])
    drop_privileges(spec.get("uid"))
    _ok(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(DUMPABLE)")  # its /proc files: closed to itself
    os.umask(0o077)
