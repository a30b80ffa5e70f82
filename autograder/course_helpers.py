"""Each mistake costs its own points once: a function that calls other graded functions is graded again
"with the course's helpers" when it fails with the student's own.

The student's functions call each other by name inside the student's process (``iterative_denoise`` calls
``estimate_x0`` and ``denoise_step_mean``; ``ConvBlock`` builds two ``Conv``). A wrong ``estimate_x0`` would
otherwise fail every loop of Part A too. So when a test of such a composite fails, :class:`HelperRuns`
runs the same check again in a **second sandboxed process** of the same submission, where every graded
name other than the one under test is bound to the course's definition. If the check passes there, the
composite is right: the test keeps its points, and its message names the helpers to look at (those whose
own tests failed, else all the graded functions it calls). The first run's verdict stands otherwise.

Why a second process: the course's definitions are the reference's answers. They are sent only to that
process, as source text the grader holds (``inspect.getsource`` of ``reference``: the package itself is
never importable in a student's process), and nothing that process prints or returns reaches the student
beyond pass or fail — its output is never read, its messages never shown. The first process, whose output
may be shown, never holds them.

Also here: :class:`StudentFunction`, the grader's stand-in for a sandboxed function that copies the final
values of the tensor arguments back into the grader's tensors after each call, so that a check sees an
in-place write (``x0.mul_(...)``) exactly as it would in the notebook (:func:`fwd_kit.checks.compare.call_student`),
and the small cell of grader helpers both processes load after the student's cells.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap

import torch

from autograder.remote import RemoteFunction, _call
from autograder.sandbox import Cell, Sandbox

GRADER_LABEL = "grader helpers"  # the label of the grader's own cell (never one of the student's)
REFERENCE_MODULES = ("denoise", "editing", "illusions", "unet", "denoiser", "flow_matching", "ddpm")

# Run by the grader's cell with exec under the file name "<grader>", so that the student's tracebacks (which
# list only frames of the student's cells) never show it.
_HELPERS = '''
def _fwd_call(_fwd_name, *args, **kwargs):
    """Call the student's function ``_fwd_name``; return [its result, its tensor arguments after the call]."""
    import torch as _torch

    def tensors(value, depth=0):
        if isinstance(value, _torch.Tensor):
            return value
        if depth < 6 and isinstance(value, (list, tuple)):
            return [tensors(v, depth + 1) for v in value]
        if depth < 6 and isinstance(value, dict):
            return {str(k): tensors(v, depth + 1) for k, v in value.items()}
        return None

    result = globals()[_fwd_name](*args, **kwargs)
    return [result, tensors(list(args)), tensors(dict(kwargs))]


_fwd_course_state = {"course": None, "own": {}}


def _fwd_use_course(_fwd_target, _fwd_sources):
    """Bind every name of ``_fwd_sources`` but ``_fwd_target`` to the course's definition (built once, in a
    namespace of its own); the previous binding of the student's is restored first."""
    space = globals()
    state = _fwd_course_state
    for name, own in state["own"].items():
        space[name] = own
    state["own"] = {}
    if state["course"] is None:
        course = dict(space)
        for name, source in _fwd_sources.items():
            exec(compile(source, "<course " + name + ">", "exec"), course)
        state["course"] = course
    for name in _fwd_sources:
        if name != _fwd_target and name in state["course"] and name in space:
            state["own"][name] = space[name]
            space[name] = state["course"][name]
'''


def grader_cell() -> Cell:
    """The cell both processes load after the student's: :data:`_HELPERS`, defined by exec."""
    return Cell(GRADER_LABEL, f"exec(compile({_HELPERS!r}, '<grader>', 'exec'), globals())")


def _copy_back(original, after, depth: int = 0) -> None:
    """Write the final values ``after`` (from the student's process) into the grader's tensors ``original``."""
    if depth > 6:
        return
    if isinstance(original, torch.Tensor) and isinstance(after, torch.Tensor):
        with torch.no_grad():
            try:
                if original.shape != after.shape:
                    original.resize_(after.shape)
                if not torch.equal(original, after.to(original.dtype)):
                    original.copy_(after)
            except RuntimeError:  # a tensor that cannot be written (e.g. a leaf that requires grad): leave it
                pass
    elif isinstance(original, (list, tuple)) and isinstance(after, list):
        for o, a in zip(original, after):
            _copy_back(o, a, depth + 1)
    elif isinstance(original, dict) and isinstance(after, dict):
        for key, value in original.items():
            if str(key) in after:
                _copy_back(value, after[str(key)], depth + 1)


class StudentFunction(RemoteFunction):
    """The student's function ``name``, as :class:`~autograder.remote.RemoteFunction`, except that after each
    call the tensor arguments hold the values the student's code left in them (an in-place write shows)."""

    def __call__(self, *args, **kwargs):
        reply, result = _call(self._channel, {"op": "call", "name": "_fwd_call"}, (self.__name__,) + args, kwargs)
        if not (isinstance(result, list) and len(result) == 3):
            from autograder.remote import SandboxFailure

            raise SandboxFailure("the student's process sent a reply the grader cannot read")
        value, args_after, kwargs_after = result
        _copy_back(list(args), args_after)
        _copy_back(dict(kwargs), kwargs_after)
        return value


# ---------------------------------------------------------------------------------------------------
# Who calls whom, and the course's definitions


def calls_of(cells: list[Cell], graded: list[str]) -> dict[str, set[str]]:
    """Per graded name: the graded names its definition refers to, directly or through the provided
    definitions and other graded functions of the notebook (e.g. ``inpaint`` → ``denoise_step`` (provided) →
    ``estimate_x0``, ``denoise_step_mean``; ``sdedit`` → ``iterative_denoise_cfg`` → ``cfg_noise``), read
    from the submission's own cells."""
    refers: dict[str, set[str]] = {}
    for cell in cells:
        try:
            tree = ast.parse(cell.source)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} - {node.name}
                refers.setdefault(node.name, set()).update(names)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):  # e.g. flip_view = (flip_upside_down, ...)
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)} if node.value else set()
                for target in targets:
                    if isinstance(target, ast.Name):
                        refers.setdefault(target.id, set()).update(names)
    result = {}
    for name in graded:
        seen, todo = set(), list(refers.get(name, ()))
        while todo:
            other = todo.pop()
            if other in seen or other == name:
                continue
            seen.add(other)
            todo.extend(refers.get(other, ()))  # through provided definitions and other graded functions
        result[name] = seen & set(graded)
    return result


def course_sources(graded: list[str]) -> dict[str, str]:
    """The course's definition of every graded name, as source text (held by the grader, never importable in
    the student's process)."""
    sources: dict[str, str] = {}
    for module_name in REFERENCE_MODULES:
        module = importlib.import_module(f"reference.{module_name}")
        for name in graded:
            obj = getattr(module, name, None)
            if name not in sources and obj is not None and getattr(obj, "__module__", None) == module.__name__:
                sources[name] = textwrap.dedent(inspect.getsource(obj))
    return sources


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


class HelperRuns:
    """The second process of a submission (started on first need), where a composite's check runs with the
    course's definitions of everything but the composite itself. ``failed``: graded names whose own tests
    failed so far (the helpers a message points at first)."""

    def __init__(self, cells: list[Cell], preamble: list[str], graded: list[str], limits=None):
        self.cells = [c for c in cells if c.label != GRADER_LABEL] + [grader_cell()]
        self.preamble, self.graded, self.limits = preamble, list(graded), limits
        self.calls = calls_of(self.cells, self.graded)
        self.failed: set[str] = set()
        self._sandbox: Sandbox | None = None
        self._sources: dict[str, str] | None = None
        self.broken = False  # the second process could not be used: keep the first verdicts

    def helpers_of(self, target: str) -> set[str]:
        return self.calls.get(target, set())

    def sandbox_for(self, target: str) -> Sandbox | None:
        """The second process with the course's definitions bound for every graded name but ``target``."""
        if self.broken:
            return None
        try:
            if self._sandbox is None:
                self._sources = {n: s for n, s in course_sources(self.graded).items()}
                self._sandbox = Sandbox(self.cells, self.preamble, self.limits)
                self._sandbox.start()
            if GRADER_LABEL in self._sandbox.load_errors:
                raise RuntimeError(self._sandbox.load_errors[GRADER_LABEL])
            with self._sandbox.hidden_output(True):
                RemoteFunction(self._sandbox, "_fwd_use_course")(target, dict(self._sources))
        except Exception:  # noqa: BLE001 - whatever went wrong there, the first run's verdict stands
            self.broken = True
            return None
        return self._sandbox

    def note(self, target: str) -> str:
        """The line of a composite that passes only with the course's helpers: which of its helpers to look at."""
        helpers = sorted(self.helpers_of(target))
        suspects = [h for h in helpers if h in self.failed]
        if suspects:
            tests = "its own test fails" if len(suspects) == 1 else "their own tests fail"
            return (f"With your own {_and(helpers)}, your {target} fails this check: look at {_and(suspects)} "
                    f"({tests}). Graded with the course's versions of the functions it calls, your {target} is "
                    "right, so this test keeps its points.")
        return (f"With your own {_and(helpers)}, your {target} fails this check, although their own tests pass: "
                f"look at how {target} calls them and at what they do on its inputs. Graded with the course's "
                f"versions of the functions it calls, your {target} is right, so this test keeps its points.")

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()
