"""Running one test: the check called on a stand-in of the student's function or class, whose calls run in
the student's sandboxed process; every way it can fail becomes a message on this test only.

A hidden test's message is only the check's question, or the type of the exception the student's code
raised — never the student's own text (exception messages, tracebacks, prints) nor a hidden input.
"""

from __future__ import annotations

import contextlib
import io
import time

from autograder.catalogue import Test, check_for
from fwd_kit.checks.compare import collecting_evidence, sharing_device_verdicts
from autograder.remote import RemoteClass, RemoteFunction, SandboxFailure, StudentError, StudentNotImplemented
from autograder.reports import Outcome, pictures
from autograder.sandbox import Sandbox
from fwd_kit import expected as expectations


def first_question(message: str) -> str:
    """The question a message starts with (up to its first '?'): all a hidden test reveals. The checks put the
    question first and every input, number and value the student's code produced after it."""
    cut = message.find("?")
    return message[:cut + 1] if cut >= 0 else "The result differs from the expected one."


def exception_name(kind: str) -> str:
    """The type of an exception the student's code raised, as a hidden test may show it: a built-in exception's
    name, else "an exception of its own type" (a class the student wrote could carry any text in its name)."""
    import builtins

    obj = getattr(builtins, kind, None) if isinstance(kind, str) and kind.isidentifier() else None
    return kind if isinstance(obj, type) and issubclass(obj, BaseException) else "an exception of its own type"


def run_test(test: Test, sandbox: Sandbox, found, problems: dict, missing: list,
             classes: set, device_verdicts: dict | None = None) -> tuple[Outcome, bool]:
    """Run one test: (its outcome, whether it failed on a NotImplementedError raised in the target's own cell —
    a stub, which :mod:`autograder.charges` never judges again). Every way it can fail is a message on this
    test only; a hidden test's message is only the check's question, or the type of the exception the
    student's code raised: never the student's own text (exception messages, tracebacks, prints)."""
    start = time.perf_counter()
    target = test.target
    hidden = test.kind == "hidden"

    def failed(message: str) -> Outcome:
        return Outcome(test, 0.0, "failed", message, time.perf_counter() - start)

    if target in missing:
        return failed(f"No cell defines {target}: did you delete or rename it? The assignment expects "
                      f"{'class' if target in classes else 'def'} {target} in the answer cell whose grade_id is "
                      f"{target}."), False
    if target in problems:
        if hidden:
            return failed(f"On hidden inputs: {target} could not be checked; its public test says why."), False
        return failed(f"{problems[target][0].upper()}{problems[target][1:]}."), False
    label = found[target]
    if label in sandbox.load_errors:
        if hidden:
            return failed(f"On hidden inputs: the cell that defines {target} could not run; its public test says "
                          "why."), False
        lines = sandbox.load_tracebacks.get(label, [])
        return failed(f"Running the cell that defines {target} failed: {sandbox.load_errors[label]}"
                      + ("\n" + "\n".join(lines) if lines else "")), False
    return _attempt(test, sandbox, label, classes, start, device_verdicts)


def _attempt(test: Test, sandbox: Sandbox, label: str, classes: set, start: float,
             device_verdicts: dict | None) -> tuple[Outcome, bool]:
    """One run of the test's check on the student's ``test.target`` in ``sandbox``: (outcome, whether it failed
    on a NotImplementedError raised in the target's own cell)."""
    target, hidden = test.target, test.kind == "hidden"

    def failed(message: str) -> Outcome:
        return Outcome(test, 0.0, "failed", message, time.perf_counter() - start)

    proxy = RemoteClass(sandbox, target) if target in classes else RemoteFunction(sandbox, target)
    check = check_for(test)
    printed = io.StringIO()
    evidence: list = []
    try:
        sharing = contextlib.nullcontext() if device_verdicts is None else sharing_device_verdicts(device_verdicts)
        with contextlib.redirect_stdout(printed), collecting_evidence() as evidence, sharing:
            check(proxy, seed=test.seed) if test.seed else check(proxy)
    except StudentNotImplemented as err:
        own = bool(err.lines) and err.lines[-1].startswith(f"cell {label},")
        return failed(f"{target} is not implemented yet: it still raises NotImplementedError. Replace the stub's "
                      "raise with your code."), own
    except StudentError as err:
        if err.kind == "MemoryError" or "can't allocate memory" in err.message or "out of memory" in err.message:
            from autograder.memory import out_of_memory_message

            return failed(f"{'On hidden inputs: ' if hidden else ''}While checking {target}, "
                          f"{out_of_memory_message()}"), False
        if hidden:
            return failed(f"On hidden inputs: your {target} raised {exception_name(err.kind)} (for hidden inputs, "
                          "its message and traceback are not shown). Does it work on inputs of other sizes and "
                          "values, as its docstring allows?"), False
        where = ("\nWhere, in your code:\n  " + "\n  ".join(err.lines)) if err.lines else ""
        return failed(f"Your {target} raised {err.kind}: {err.message}{where}"), False
    except SandboxFailure as err:
        if hidden:
            return failed(f"On hidden inputs: the check of {target} could not finish (your code ran too long, used "
                          "too much memory, stopped, or sent back something the grader cannot read). Does it "
                          "finish quickly on inputs of other sizes?"), False
        return failed(f"While checking {target}, {err}."), False
    except AssertionError as err:
        message = str(err) or "The result differs from the expected one."
        if hidden:
            return failed(f"On hidden inputs: {first_question(message)}"), False
        outcome = failed(message)
        outcome.pictures = pictures(evidence) if test.kind == "public" else []
        return outcome, False
    except Exception as err:  # noqa: BLE001 - e.g. a result of a type the check could not use
        if hidden:
            return failed(f"On hidden inputs: the check could not use what your {target} gave back "
                          f"({type(err).__name__}). Does it return what its docstring says?"), False
        return failed(f"The check could not use what your {target} gave back ({type(err).__name__}: {err}). "
                      "Does it return what its docstring says, of the right type and shape?"), False
    text = printed.getvalue().strip()
    if hidden:
        text = "✓ passed on hidden inputs"
    return Outcome(test, test.max_score, "passed", text or "✓ passed", time.perf_counter() - start), False


def check_failure(test: Test, subject, bindings: dict) -> tuple[str, str | None] | None:
    """How ``test``'s check fails on ``subject`` with the reference's helpers bound as ``bindings`` says
    (:mod:`autograder.charges`), the reference computed live; nothing of it is shown to anyone. None if it
    passes; else (what failed: the assertion's message, or the exception's type and message; the cell of the
    innermost line of the student's code an exception came from, or None)."""
    from autograder.charges import helpers_bound

    check = check_for(test)
    try:
        with expectations.forced("live"), helpers_bound(bindings), contextlib.redirect_stdout(io.StringIO()), \
                collecting_evidence():
            check(subject, seed=test.seed) if test.seed else check(subject)
    except AssertionError as err:
        return f"assertion: {err}", None
    except StudentError as err:
        cell = err.lines[-1].split(",", 1)[0].removeprefix("cell ") if err.lines else None
        return f"{err.kind}: {err.message}", cell
    except SandboxFailure:
        return "the student's process failed", "?"
    except Exception as err:  # noqa: BLE001 - any other failure
        return f"{type(err).__name__}: {err}", None
    return None
