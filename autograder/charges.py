"""Each mistake costs its own points once, and is always charged to someone.

A function or class that uses other graded ones (a *composite*: ``iterative_denoise`` calls ``estimate_x0``
and ``denoise_step_mean``; ``ConvBlock`` builds two ``Conv``) fails its checks when a helper is wrong, even
if its own logic is right. So, after every test has run, each failed test of a composite is judged again —
in the sealed process (the one that serves the hidden tests, whose output is never read), never in a
process whose output is shown:

1. **Is the composite's own logic right?** First, the sealed process's helpers get copies of their tensor
   arguments from then on (an in-place write in a helper is its own test's mistake and must not corrupt a
   caller's inputs, nor the check's). The same check runs with the course's composite as the expected
   side, computed *in the grader* over the student's own helpers (each reference module's binding of a
   helper is replaced, for the duration of the check, by a proxy of the student's function or class in the
   sealed process). If the student's composite passes, its own logic is right. If it fails, the check runs
   on the course's composite over the same helpers too: failing it the same way (the same assertion with
   the same numbers, or the same exception and message) means the composite does what the course's does
   on these helpers. Except when that failure is an exception a helper raises on its own public test too
   (a helper that always raises): what the composite does after that call is unseen, so the test stays
   failed with a note naming the helper (else a composite that only calls it would be paid). No course
   code, source or result ever enters a process that runs student code: the student's helpers are called
   with arguments only, as the checks call them anyway.
2. **Which helper is to blame?** If one of its helpers failed its own test, the composite keeps its points
   and its message names that helper. If every helper passed its own test, the course's composite is
   checked with one student helper at a time in place of the course's; a helper with which it fails is
   charged: that helper's test of the same kind loses its points, with a message saying what it breaks.
   Without such a helper the composite's failure stands.

A semantic test (a drawing by the student's loop) that fails keeps its points when the public test of the
same function was kept by step 2. A stub never gains a point: its own check fails whichever helpers run.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect

from autograder.reports import Outcome

REFERENCE_MODULES = ("denoise", "editing", "illusions", "unet", "denoiser", "flow_matching", "ddpm")


def calls_of(cells, graded: list[str]) -> dict[str, set[str]]:
    """Per graded name: the graded names its definition refers to, directly or through the provided
    definitions and other graded functions of the notebook (e.g. ``inpaint`` → ``denoise_step`` (provided) →
    ``estimate_x0``, ``denoise_step_mean``), read from the submission's own cells."""
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
            todo.extend(refers.get(other, ()))
        result[name] = seen & set(graded)
    return result


@contextlib.contextmanager
def helpers_bound(bindings: dict):
    """Inside, every reference module's name in ``bindings`` refers to the given object (a proxy of the
    student's function or class); the course's own bindings come back on leaving."""
    saved = []
    try:
        for module_name in REFERENCE_MODULES:
            module = importlib.import_module(f"reference.{module_name}")
            for name, obj in bindings.items():
                if name in vars(module):
                    saved.append((module, name, vars(module)[name]))
                    setattr(module, name, obj)
        yield
    finally:
        for module, name, original in reversed(saved):
            setattr(module, name, original)


def course_definition(name: str):
    """The course's function or class ``name`` (from the reference package: the grader's side only)."""
    for module_name in REFERENCE_MODULES:
        module = importlib.import_module(f"reference.{module_name}")
        obj = vars(module).get(name)
        if obj is not None and getattr(obj, "__module__", None) == module.__name__:
            return obj
    return None


def course_with(name: str, bindings: dict):
    """A stand-in of the course's ``name`` that runs with ``bindings`` in place (a function, or a class
    factory with the class's signature): the check calls it as it would call the student's."""
    definition = course_definition(name)

    def run(*args, **kwargs):
        with helpers_bound(bindings):
            return definition(*args, **kwargs)

    run.__name__ = name
    run.__signature__ = inspect.signature(definition)
    return run


def _and(names) -> str:
    names = sorted(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


class Charges:
    """The charge-once bookkeeping of one submission (see the module docstring)."""

    def __init__(self, cells, graded: list[str], classes: set[str]):
        self.calls = calls_of(cells, graded)
        self.classes = set(classes)

    def helpers_of(self, target: str) -> set[str]:
        return self.calls.get(target, set())

    def settle(self, outcomes: list[Outcome], sealed, failure, stubs: set, labels: dict | None = None) -> None:
        """Judge again every failed test of a composite (in place in ``outcomes``). ``failure(test, subject,
        bindings)`` runs ``test``'s check on ``subject`` (the student's proxy, or the course's stand-in) with
        ``bindings`` in place: None if it passes, else (what failed, the cell an exception of the student's
        code came from); ``sealed`` is the process the student's helpers are called in; ``stubs``: the tests
        that failed on their own stub (never judged again); ``labels``: each graded name's cell."""
        from autograder.remote import RemoteClass, RemoteFunction, shield

        labels = labels or {}
        by_key = {(o.test.target, o.test.kind): o for o in outcomes}
        todo = [o for o in outcomes if o.status != "passed" and o.test.kind in ("public", "hidden")
                and self.helpers_of(o.test.target) and id(o) not in stubs]
        if not todo:
            return
        # a helper's in-place write is its own test's mistake: from here on it reaches no caller, neither in
        # the student's composite nor in the course's (whose calls of the helper run in the same process)
        shield(sealed, set().union(*(self.helpers_of(o.test.target) for o in todo)))
        proxy = lambda name: (RemoteClass if name in self.classes else RemoteFunction)(sealed, name)  # noqa: E731
        kept: set[str] = set()  # composites whose public test was kept
        for outcome in todo:
            test, target = outcome.test, outcome.test.target
            helpers = self.helpers_of(target)
            mine = {h: proxy(h) for h in helpers}
            yours = failure(test, proxy(target), mine)
            if yours is not None:  # does the course's composite, over the same helpers, fail the same way?
                course = failure(test, course_with(target, mine), mine)
                if course is None or course[0] != yours[0]:
                    continue  # it does otherwise: its own mistake
                raiser = [h for h in sorted(helpers) if yours[1] is not None and labels.get(h) == yours[1]
                          and f"Your {h} raised {yours[0]}" in getattr(by_key.get((h, "public")), "output", "")]
                if raiser:  # a helper that raises this on its own test too: the rest of the composite is unseen
                    self.blocked(outcome, raiser)
                    continue
            failed = sorted(h for h in helpers if (h, test.kind) in by_key and by_key[(h, test.kind)].status != "passed")
            if not failed:
                culprits = [h for h in sorted(helpers) if (h, test.kind) in by_key
                            and failure(test, course_with(target, {h: mine[h]}), {}) is not None]
                if not culprits:
                    continue
                for h in culprits:
                    self.charge(by_key[(h, test.kind)], target)
                failed = culprits
            self.keep(outcome, failed)
            if test.kind == "public":
                kept.add(target)
        for outcome in outcomes:
            if outcome.test.kind == "semantic" and outcome.status != "passed" and outcome.test.target in kept:
                helpers = sorted(h for h in self.helpers_of(outcome.test.target)
                                 if (h, "public") in by_key and by_key[(h, "public")].status != "passed")
                self.keep(outcome, helpers)

    @staticmethod
    def keep(outcome: Outcome, helpers: list[str]) -> None:
        target, hidden = outcome.test.target, outcome.test.kind == "hidden"
        tests = "its own test fails" if len(helpers) == 1 else "their own tests fail"
        note = (f"With your own {_and(helpers)}, your {target} fails this check: look at {_and(helpers)} ({tests}). "
                f"The course's {target}, run over your own helpers, gives what yours gives, so {target} itself is "
                "right and this test keeps its points.")
        outcome.score, outcome.status = outcome.test.max_score, "passed"
        outcome.output = ("✓ passed on hidden inputs\n" if hidden else "") + note
        outcome.pictures = []

    @staticmethod
    def blocked(outcome: Outcome, raised_in: list[str]) -> None:
        """The failure is the exception a helper raises on its own test too: what the composite does after
        that call is unseen, so the test's points stay lost (keeping them would pay any composite that only
        calls a helper that always raises)."""
        target, helper = outcome.test.target, _and(raised_in)
        outcome.output += (f"\n(This exception comes from your {helper}, not from {target} itself, so what "
                           f"{target} does after that call could not be judged: fix {helper} first (its own test "
                           "says why), and this test runs it again.)")

    @staticmethod
    def charge(outcome: Outcome, composite: str) -> None:
        """Charge a helper that passed its own check but breaks ``composite``."""
        helper = outcome.test.target
        on = "On hidden inputs: " if outcome.test.kind == "hidden" else ""
        outcome.score, outcome.status, outcome.pictures = 0.0, "failed", []
        outcome.output = (f"{on}{helper} passes its own check, but {composite} fails with it (and passes with the "
                          f"course's {helper}): does {helper} change its input, or behave otherwise on the inputs "
                          f"{composite} gives it?")
