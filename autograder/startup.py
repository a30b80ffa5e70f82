"""The grader's start-up: its imports run without the cyclic garbage collector, and what they loaded is frozen.

Importing torch, ``torch._dynamo`` (PyTorch imports it on the first operation on a meta tensor) and, for Part A,
diffusers creates about a million objects that live as long as the process. With the collector on, each of its
full collections during the imports scans all of them again (six such collections, 0.4 CPU-seconds of the
2.3 that importing the Part B grader costs); none of it is garbage. So the imports run with the collector off,
and :func:`gc.freeze` then moves what they loaded to the permanent generation: later collections never scan it,
and a process forked afterwards (the zygote, a student's process) never writes to those pages (a scan would
write to each object's header and copy the page).

It also keeps packages out of the grader that no check uses (:func:`without_unused_packages`): transformers
and SciPy, which diffusers imports whenever they are installed (1.4 of the 2.0 CPU-seconds that importing
diffusers' UNet and scheduler takes, and 90 MB that no two processes share), and Triton and NVIDIA's CUDA
bindings, which torch and ``torch._dynamo`` import where the CUDA build of torch brought them (0.1 to 0.2
CPU-seconds; the grader runs on the CPU, and the CPU build that ``setup.sh`` installs has neither).

``import autograder.preload`` does both for :mod:`autograder.grade` (the batch's forkserver preloads it;
``course.gradescope`` imports it first).
"""

from __future__ import annotations

import contextlib
import gc
import sys

UNUSED = ("transformers", "scipy",  # imported by diffusers when installed; the grader's checks need neither
          "triton", "cuda")  # of torch's CUDA build (cuda: cuda.bindings); torch imports both within try/except


@contextlib.contextmanager
def imports_unscanned(collect: bool = False):
    """Inside: the cyclic collector is off. On exit: with ``collect``, one collection (it scans only what is
    not frozen yet), then everything alive is frozen and the collector is on again if it was before."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collect:
            gc.collect()
        gc.freeze()
        if was_enabled:
            gc.enable()


def without_unused_packages() -> None:
    """Make ``UNUSED`` look not installed to this process, where none of them is imported yet: ``sys.modules[name]
    = None`` is Python's own way (an import of it raises ``ModuleNotFoundError``; ``find_spec`` finds nothing), so
    diffusers sees them missing and skips them. A student's process forked later gets them back
    (:func:`with_unused_packages`): their own code may import SciPy."""
    for name in UNUSED:
        if name not in sys.modules:
            sys.modules[name] = None


def with_unused_packages() -> None:
    """Undo :func:`without_unused_packages`: ``UNUSED`` can be imported again (they load when imported)."""
    for name in UNUSED:
        if name in sys.modules and sys.modules[name] is None:
            del sys.modules[name]
