"""The grader's start-up: its imports run without the cyclic garbage collector, and what they loaded is frozen.

Importing torch and, for Part A, diffusers creates about a million objects that live as long as the process.
With the collector on, each of its full collections during the imports scans all of them again (six such
collections, 0.4 CPU-seconds of the 2.3 that importing the Part B grader costs); none of it is garbage. So
the imports run with the collector off, and :func:`gc.freeze` then moves what they loaded to the permanent
generation: later collections never scan it, and a process forked afterwards (the zygote, a student's
process) never writes to those pages (a scan would write to each object's header and copy the page).

It also keeps packages out of the grader that no check uses (:func:`without_unused_packages`): transformers
and SciPy, which diffusers imports whenever they are installed (1.4 of the 2.0 CPU-seconds that importing
diffusers' UNet and scheduler takes, and 90 MB that no two processes share), and Triton and NVIDIA's CUDA
bindings, which torch and ``torch._dynamo`` import where the CUDA build of torch brought them (0.1 to 0.2
CPU-seconds; the grader runs on the CPU, and the CPU build that ``setup.sh`` installs has neither).

Nor does a grader load ``torch._dynamo`` (:func:`dynamo_on_demand`): TorchDynamo is torch.compile's tracer,
and nothing in grading compiles, yet torch imports it (0.9 CPU-seconds and 40 MB, a fifth of what grading a
Part B notebook costs) only to wrap the functions that run an operation on a meta tensor or an optimiser's
step in ``disable`` and ``graph_break``, which outside compilation do nothing; diffusers asks it for
``allow_in_graph`` and torchvision imports ``utils.is_compile_supported``. Stand-ins answer those; the first
use of anything else loads the real module in their place.

``import autograder.preload`` does all three for :mod:`autograder.grade` (the batch's forkserver preloads it;
``course.gradescope`` imports it first).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.abc
import importlib.util
import os
import sys
import types

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


class _StandIn(types.ModuleType):
    """A module of ``torch._dynamo`` that loads the real one when a name it lacks is taken from it."""

    def __getattr__(self, name):
        if name.startswith("__"):  # what import machinery and repr probe for
            raise AttributeError(name)
        return getattr(_real(self.__name__), name)


class _DynamoStandIn(_StandIn):
    """``torch._dynamo`` until something needs more of it than :meth:`disable` and :meth:`graph_break`.

    Both are what torch itself calls outside compilation, and there they change nothing: ``disable(fn)`` only
    keeps TorchDynamo from tracing ``fn`` when code is compiled, and ``graph_break()`` is an empty function.
    diffusers' ``allow_in_graph`` is answered too. Any other attribute (``config``, ``optimize`` of
    ``torch.compile``) or an import of a submodule other than ``utils`` (:class:`_DynamoUtilsStandIn`) first
    puts the real module in the stand-in's place (:func:`_load_real_dynamo`). Functions already wrapped stay
    unwrapped and diffusers' classes unmarked; that matters only to code compiled later, and the grader
    compiles none.
    """

    def disable(self, fn=None, recursive=True, *, reason=None, wrapping=True):  # noqa: ARG002 - torch's signature
        return fn if fn is not None else (lambda f: f)

    def graph_break(self, msg=""):  # noqa: ARG002 - torch's signature
        return None

    def allow_in_graph(self, fn):
        """diffusers marks its attention classes with it at import: outside compilation, nothing to record."""
        return fn


class _DynamoUtilsStandIn(_StandIn):
    """``torch._dynamo.utils`` while the stand-in package is in place: torchvision imports
    ``is_compile_supported`` from it (and calls it only while compiling); calling it, or taking any other name,
    loads the real modules first."""

    def is_compile_supported(self, device_type):
        return _real(self.__name__).is_compile_supported(device_type)


class _LoadedModule(importlib.abc.Loader):
    """A loader whose module is made already: one in ``sys.modules`` (a submodule the real ``torch._dynamo``
    loaded while the import of that submodule was under way: it is not executed a second time), or a
    stand-in."""

    def __init__(self, module):
        self.module, self.spec = module, module.__spec__

    def create_module(self, spec):  # noqa: ARG002
        return self.module

    def exec_module(self, module):
        if self.spec is not None:  # a loaded module keeps its own (the import machinery set ours)
            module.__spec__ = self.spec


class _DynamoSubmodules(importlib.abc.MetaPathFinder):
    """Imports of ``torch._dynamo.<sub>``: where the stand-in is in place, ``utils`` gets its own stand-in and
    any other ``<sub>`` the real package first, as the import of a submodule would load its package. That may
    load ``<sub>`` too, after the import machinery looked for it in ``sys.modules``: then this finder hands it
    over, so that it is not executed a second time (two copies of a module, each with its own state). Once the
    real package is in place, this finder finds nothing."""

    def find_spec(self, name, path=None, target=None):  # noqa: ARG002
        if not name.startswith("torch._dynamo.") or target is not None:
            return None
        if isinstance(sys.modules.get("torch._dynamo"), _DynamoStandIn):
            if name == "torch._dynamo.utils":
                return importlib.util.spec_from_loader(name, _LoadedModule(
                    _DynamoUtilsStandIn(name, _DynamoUtilsStandIn.__doc__)))
            _load_real_dynamo()
            module = sys.modules.pop(name, None)  # (left in sys.modules, the import machinery would run it again)
            if module is not None:
                return importlib.util.spec_from_loader(name, _LoadedModule(module))
        return None  # the usual finders, in the real package's folder (the stand-in's __path__ is the same)


def _load_real_dynamo():
    """Replace the stand-ins with the real ``torch._dynamo`` (once) and return it."""
    current = sys.modules.get("torch._dynamo")
    if current is not None and not isinstance(current, _DynamoStandIn):
        return current
    import torch

    for name in ("torch._dynamo.utils", "torch._dynamo"):
        if isinstance(sys.modules.get(name), _StandIn):
            del sys.modules[name]
    if isinstance(torch.__dict__.get("_dynamo"), _StandIn):
        del torch._dynamo
    return importlib.import_module("torch._dynamo")


def _real(name: str):
    """The real module ``name`` (``torch._dynamo`` or one of its submodules), loaded where needed."""
    _load_real_dynamo()
    return importlib.import_module(name)


def dynamo_on_demand() -> None:
    """Put the stand-in (:class:`_DynamoStandIn`) in place of ``torch._dynamo`` where neither is loaded yet."""
    if "torch._dynamo" in sys.modules:
        return
    import torch

    stand_in = _DynamoStandIn("torch._dynamo", _DynamoStandIn.__doc__)
    stand_in.__path__ = [os.path.join(os.path.dirname(torch.__file__), "_dynamo")]  # a package, for submodules
    sys.modules["torch._dynamo"] = stand_in
    torch._dynamo = stand_in
    if not any(isinstance(f, _DynamoSubmodules) for f in sys.meta_path):
        sys.meta_path.insert(0, _DynamoSubmodules())


def with_unused_packages() -> None:
    """Undo :func:`without_unused_packages`: ``UNUSED`` can be imported again (they load when imported)."""
    for name in UNUSED:
        if name in sys.modules and sys.modules[name] is None:
            del sys.modules[name]
