"""Where the modules that moved into the kit came from: the one shim for their retired names.

The helpers and the public checks once lived in the instructors' packages (``reference.loading``,
``autograder.public``, …) and moved into the student kit. Every module now has one name, the kit's; an old
name no longer imports. So that code written against an old name (a notebook from an earlier release, an
instructor's script) learns where to look, ``reference`` and ``autograder`` each call :func:`install` when
they are imported: it appends :class:`MovedModules` to ``sys.meta_path``, last, so that it is asked only
about names no real module answers, and it answers an old name with an ImportError naming the new one::

    >>> import reference.loading
    ImportError: reference.loading moved to fwd_kit.loading: import fwd_kit.loading instead ...

The grader also reads :data:`MOVED` to say the same when a submitted notebook imports an old name
(:func:`autograder.notebook.forbidden_import`). The kit itself never imports the instructors' packages.
"""

from __future__ import annotations

import sys

MOVED = {  # old module name → the module it is now
    "reference.checks": "fwd_kit.validate",
    "reference.data": "fwd_kit.data",
    "reference.digit_model": "fwd_kit.digit_model",
    "reference.images": "fwd_kit.images",
    "reference.loading": "fwd_kit.loading",
    "reference.tiny": "fwd_kit.tiny",
    "reference.upsample": "fwd_kit.upsample",
    "autograder.public": "fwd_kit.checks",
    "autograder.public_a": "fwd_kit.checks.public_a",
    "autograder.public_a_illusions": "fwd_kit.checks.public_a_illusions",
    "autograder.public_b": "fwd_kit.checks.public_b",
    "autograder.public_b_generative": "fwd_kit.checks.public_b_generative",
    "autograder.compare": "fwd_kit.checks.compare",
    "autograder.fixtures": "fwd_kit.checks.fixtures",
    "autograder.child": "fwd_kit.grading.child",
    "autograder.wire": "fwd_kit.grading.wire",
}


def moved_message(old: str) -> str:
    """The sentence that tells where ``old`` went."""
    new = MOVED[old]
    return f"{old} moved to {new}: import {new} instead (for example `from {new} import ...`)."


class MovedModules:
    """A finder on ``sys.meta_path`` that refuses each retired name of :data:`MOVED` with its new name.

    It raises ImportError rather than ModuleNotFoundError: ``from reference import loading`` would otherwise
    swallow the message and say only "cannot import name 'loading'"."""

    def find_spec(self, name, path=None, target=None):
        if name in MOVED:
            raise ImportError(moved_message(name), name=name)
        return None


def install() -> None:
    """Put :class:`MovedModules` last on ``sys.meta_path``, once."""
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(MovedModules())
