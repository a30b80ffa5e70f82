"""Kernel confinement the student's process applies to itself before any student code runs: a seccomp
filter (compiled by libseccomp) and a Landlock ruleset. Both are irreversible and inherited by threads.

- **seccomp**: no new programs (``execve``), no new processes (``fork``, ``vfork``, ``clone`` without
  ``CLONE_THREAD``; ``clone3`` answers ENOSYS so that glibc creates threads with ``clone``), no sockets,
  no ``ptrace`` or reading other processes' memory, signals only to itself, no namespaces, mounts,
  io_uring, BPF or keyrings. Refused calls fail with EPERM, which Python reports as PermissionError.
- **Landlock**: files may be read under the read-only roots and ``/proc`` (Landlock also refuses
  ``/proc/<pid>`` of processes outside the sandbox), written only under the scratch folder; where the
  kernel's ABI allows, TCP connect/bind, abstract unix sockets and signals outside the sandbox are refused.

Only ``ctypes`` and the stdlib: the grader sends which layers it expects, and a layer that fails to
install stops the process (the grader then reports it), never runs student code without it.
"""

from __future__ import annotations

import ctypes
import errno
import os

# seccomp (values from <seccomp.h>)
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_FLTATR_CTL_TSYNC = 4  # apply the filter to every thread of the process
SCMP_CMP_NE, SCMP_CMP_MASKED_EQ = 1, 7
CLONE_THREAD = 0x00010000
DENIED = (  # system calls refused outright
    "execve", "execveat", "fork", "vfork", "socket", "socketpair", "connect", "bind", "listen", "accept",
    "accept4", "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "pidfd_open",
    "pidfd_getfd", "pidfd_send_signal", "kcmp", "tkill", "unshare", "setns", "mount", "umount2", "pivot_root",
    "chroot", "move_mount", "open_tree", "fsopen", "fsmount", "fsconfig", "fspick", "mount_setattr", "bpf",
    "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "open_by_handle_at", "name_to_handle_at", "kexec_load", "kexec_file_load",
    "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff", "acct", "iopl", "ioperm",
    "quotactl", "syslog", "fanotify_init", "personality", "mknod", "mknodat", "chmod", "fchmod", "fchmodat",
    "fchmodat2", "setxattr", "lsetxattr", "fsetxattr",
)  # mknod: no device nodes; chmod: a file it makes stays private to its uid (umask 077)
SELF_ONLY = ("kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo")  # first argument must be our own pid


class ScmpArgCmp(ctypes.Structure):
    """``struct scmp_arg_cmp``: compare argument ``arg`` with ``op`` against ``datum_a``/``datum_b``."""

    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def _errno_action(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)  # SCMP_ACT_ERRNO(code)


def install_seccomp() -> None:
    """Load the filter (raises OSError when libseccomp or the kernel refuses)."""
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(ScmpArgCmp)]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not ctx:
        raise OSError("seccomp_init failed")
    try:
        def rule(name: str, action: int, *compare: ScmpArgCmp) -> None:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number < 0:
                return  # not a system call of this architecture
            array = (ScmpArgCmp * max(1, len(compare)))(*compare)
            code = lib.seccomp_rule_add_array(ctx, action, number, len(compare), array)
            if code < 0:
                raise OSError(-code, f"seccomp rule for {name}: {os.strerror(-code)}")

        for name in DENIED:
            rule(name, _errno_action(errno.EPERM))
        rule("clone3", _errno_action(errno.ENOSYS))  # glibc then creates threads with clone
        rule("clone", _errno_action(errno.EPERM), ScmpArgCmp(0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0))
        for name in SELF_ONLY:
            rule(name, _errno_action(errno.EPERM), ScmpArgCmp(0, SCMP_CMP_NE, os.getpid(), 0))
        if lib.seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1) < 0:
            raise OSError("seccomp: cannot apply the filter to every thread")
        code = lib.seccomp_load(ctx)
        if code < 0:
            raise OSError(-code, f"seccomp_load: {os.strerror(-code)}")
    finally:
        lib.seccomp_release(ctx)


# Landlock (values from <linux/landlock.h>)
SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446  # the same on every architecture
RULE_PATH_BENEATH = 1
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_MAKE_CHAR, FS_MAKE_SOCK, FS_MAKE_BLOCK = 1 << 6, 1 << 9, 1 << 11
FS_ALL_V1 = (1 << 13) - 1  # execute … make_sym: everything ABI 1 handles
NEVER = FS_EXECUTE | FS_MAKE_CHAR | FS_MAKE_SOCK | FS_MAKE_BLOCK  # not even in the scratch folder
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15  # ABI 2, 3, 5
FILE_ONLY = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV  # rights a file rule may hold
NET_ALL = (1 << 0) | (1 << 1)  # bind_tcp, connect_tcp (ABI 4)
SCOPE_ALL = (1 << 0) | (1 << 1)  # abstract unix sockets, signals (ABI 6)
PR_SET_NO_NEW_PRIVS = 38


class RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when it has none."""
    libc = ctypes.CDLL(None, use_errno=True)
    return max(0, int(libc.syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))))


def install_landlock(read_roots, write_roots) -> int:
    """Restrict this process's file access to reading ``read_roots`` and writing ``write_roots``; returns
    the ABI used (raises OSError when the kernel refuses)."""
    libc = ctypes.CDLL(None, use_errno=True)
    abi = landlock_abi()
    if abi < 1:
        raise OSError("the kernel has no Landlock")
    handled = FS_ALL_V1 | (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0) | \
        (FS_IOCTL_DEV if abi >= 5 else 0)
    attr = RulesetAttr(handled, NET_ALL if abi >= 4 else 0, SCOPE_ALL if abi >= 6 else 0)
    size = 8 if abi < 4 else (16 if abi < 6 else 24)
    ruleset = libc.syscall(SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        reading = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
        for paths, access in ((read_roots, reading), (write_roots, handled & ~NEVER)):
            for path in paths:
                _allow(libc, ruleset, path, access & handled)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
        if libc.syscall(SYS_RESTRICT_SELF, ruleset, ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    return abi


def _allow(libc, ruleset: int, path: str, access: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a root that does not exist here
    try:
        if not os.path.isdir(path):
            access &= FILE_ONLY
        rule = PathBeneathAttr(access, fd)
        if libc.syscall(SYS_ADD_RULE, ruleset, RULE_PATH_BENEATH, ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), f"landlock_add_rule for {path} failed")
    finally:
        os.close(fd)


PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Be killed when the grader's process that started this one dies (outside bubblewrap, which does it)."""
    import signal

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)
