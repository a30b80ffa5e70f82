"""The grading machines tests/test_hostile.py cannot rent, made on this one for one grading process.

A grading runs in a subprocess that first calls :func:`enter` (as root, before it imports the grader):

- ``"no-namespaces"`` — a seccomp filter refuses ``unshare`` (as a container without user namespaces or
  CAP_SYS_ADMIN does): the grader's trial children find no namespaces and it falls back to another uid,
  seccomp and Landlock;
- ``"no-landlock"`` — the same, and Landlock's system calls answer ENOSYS (a kernel without it).

This machine's interpreter lives under ``/root`` (closed to other users), where no uid of the sandbox
could run it; so the process also gets a private mount namespace in which ``/root`` holds only the
interpreter, the caches and the configuration (as on a machine whose Python is installed for everyone).
``private=True`` also binds private copies (mode 0700) of ``reference``, ``autograder`` and ``course`` over
the checkout's, as an instructor who followed the grader's advice would have them.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KEPT_UNDER_ROOT = (".pyenv", ".cache", ".config")


def _view(private: bool) -> None:
    from autograder.confine import CLONE_NEWNS, MS_BIND, MS_PRIVATE, MS_REC, _libc, _ok, mount

    _ok(_libc().unshare(CLONE_NEWNS), "unshare")
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    if not os.stat("/root").st_mode & 0o001:
        stage = tempfile.mkdtemp(prefix="fwd-view-")
        mount("/root", stage, None, MS_BIND | MS_REC)
        mount("tmpfs", "/root", "tmpfs", 0, "mode=0755")
        for name in KEPT_UNDER_ROOT:
            if os.path.exists(f"{stage}/{name}"):
                os.mkdir(f"/root/{name}", 0o755)
                mount(f"{stage}/{name}", f"/root/{name}", None, MS_BIND | MS_REC)
    if private:
        copies = tempfile.mkdtemp(prefix="fwd-private-")
        mount("tmpfs", copies, "tmpfs", 0, "mode=0700")
        for package in ("reference", "autograder", "course"):
            shutil.copytree(REPO / package, f"{copies}/{package}", ignore=shutil.ignore_patterns("__pycache__"))
            os.chmod(f"{copies}/{package}", 0o700)
            mount(f"{copies}/{package}", str(REPO / package), None, MS_BIND)


def _filter(no_landlock: bool) -> None:
    """A seccomp filter on this process and all it starts: no ``unshare`` (EPERM), perhaps no Landlock."""
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(0x7FFF0000)  # allow the rest
    denied = {"unshare": errno.EPERM}
    if no_landlock:
        denied.update({name: errno.ENOSYS for name in
                       ("landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self")})
    for name, code in denied.items():
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if lib.seccomp_rule_add(ctx, 0x00050000 | code, number, 0) < 0:
            raise OSError(f"seccomp rule for {name}")
    if lib.seccomp_load(ctx) < 0:
        raise OSError("seccomp_load")


def enter(config: str, private: bool = False) -> None:
    if config not in ("no-namespaces", "no-landlock"):
        raise ValueError(f"unknown configuration {config!r}")
    _view(private)
    _filter(no_landlock=config == "no-landlock")
