"""The cells a notebook template is made of; ``course.notebooks.build`` turns a list of them into a notebook.

A template (``course/notebooks/partA.py``, ``partB.py``) is a module with ``CELLS: list`` of these
objects, in order. The solution notebook in ``solutions/`` is built from it; nbgrader's
``generate_assignment`` makes the student notebook in ``assignments/`` from that. One source of truth:
a ``Solution`` cell holds the source of a ``reference`` function or class, lifted with ``inspect``, so
the reference, the solution notebook and the student notebook cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Markdown:
    """Instructions in our own words (markdown; formulas in $...$). Read-only for students."""

    text: str


@dataclass(frozen=True)
class Code:
    """Provided code (imports, parameters, figures, training calls). Students may edit it; not graded."""

    source: str
    tags: tuple[str, ...] = ()  # cell tags, e.g. ("parameters",) for the first parameters cell


@dataclass(frozen=True)
class Solution:
    """A function or class students write, lifted from ``reference`` (autograded answer cell).

    obj: the reference function or class. Its nbgrader ``grade_id`` is ``obj.__name__``. In the solution
    notebook the cell holds the reference source with the body between ``### BEGIN SOLUTION`` and
    ``### END SOLUTION`` (the signature and docstring stay outside, so students see them); in the
    student notebook nbgrader replaces the body with ``raise NotImplementedError()``.
    """

    obj: object

    @property
    def grade_id(self) -> str:
        return self.obj.__name__


@dataclass(frozen=True)
class Check:
    """A public check (nbgrader autograder-test cell, locked, with points) run right after a solution.

    source: code calling a visible check of ``autograder.public`` (e.g. ``check_forward(forward)``);
    it must print nothing to stderr. grade_id: ``"test_" + the function's name``.
    hidden_seeds: the build appends nbgrader's hidden-test block to the solution notebook's cell, each
    ``check_<name>(...)`` call of ``source`` again with ``seed=hidden_seed(s)`` for every ``s`` here (released
    notebooks show only ``source``; ``nbgrader autograde`` restores the block). ``()``: no hidden tests.
    """

    grade_id: str
    points: int
    source: str
    hidden_seeds: tuple[int, ...] = (1,)


@dataclass(frozen=True)
class Reflection:
    """A written answer graded by hand (nbgrader manually graded markdown answer cell with points)."""

    grade_id: str
    points: int
    prompt: str  # the question, shown in a read-only markdown cell just above the answer cell
    answer: str = ""  # optional model answer: in the solution notebook only (nbgrader clears it on release)


PUBLIC_CHECKS = "fwd_kit.checks"  # the module holding check_<name> for every graded function and class


def graded(obj, points: int, checks: str = PUBLIC_CHECKS) -> list:
    """A Solution cell for ``obj`` and right after it its Check cell, ``check_<name>(<name>)``
    (grade_id ``test_<name>``, ``points`` points; the build adds the hidden ``seed=hidden_seed(1)`` call)."""
    name = obj.__name__
    source = f"from {checks} import check_{name}\n\ncheck_{name}({name})"
    return [Solution(obj), Check(f"test_{name}", points, source)]
