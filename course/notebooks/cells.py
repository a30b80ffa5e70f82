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
    note: str = ""  # a line above the code saying what its points are made of (a comment in the cell)

    @property
    def grade_id(self) -> str:
        return self.obj.__name__


@dataclass(frozen=True)
class Check:
    """The graded tests run right after a solution, one nbgrader autograder-test cell (locked) per block of
    points, so that nbgrader grades each as ``course grade`` does:

    - ``grade_id`` (``"test_" + the function's name``), ``points``: the public check. source: code calling a
      visible check of ``fwd_kit.checks`` (e.g. ``check_forward(forward)``); it must print nothing to stderr.
    - ``<grade_id>_hidden``, ``hidden_points`` (none if 0): nbgrader's hidden-test block, each
      ``check_<name>(...)`` call of ``source`` again with ``seed=hidden_seed(s)`` for every ``s`` of
      ``hidden_seeds`` (released notebooks show only a comment; ``nbgrader autograde`` restores the block).
    - ``<grade_id>_semantic``, ``semantic_points`` (none if 0): ``semantic``, a call of a check of
      ``autograder.semantic``, all of it hidden in the release.
    """

    grade_id: str
    points: float
    source: str
    hidden_seeds: tuple[int, ...] = (1,)
    hidden_points: float = 0.0
    semantic: str = ""
    semantic_points: float = 0.0


@dataclass(frozen=True)
class Reflection:
    """A written answer graded by hand (nbgrader manually graded markdown answer cell with points)."""

    grade_id: str
    points: float
    prompt: str  # the question, shown in a read-only markdown cell just above the answer cell
    answer: str = ""  # optional model answer: in the solution notebook only (nbgrader clears it on release)


PUBLIC_CHECKS = "fwd_kit.checks"  # the module holding check_<name> for every graded function and class


def rubric_row(name: str):
    """The rubric's row of a graded function or class (:mod:`autograder.rubric`), whichever part it is in."""
    from autograder.rubric import RUBRICS

    rows = [row for table in RUBRICS.values() for row in table.graded if row.name == name]
    if len(rows) != 1:
        raise ValueError(f"{name} must be on the rubric of exactly one part (autograder/rubric.py), but it is on "
                         f"{len(rows)}.")
    return rows[0]


def graded(obj, checks: str = PUBLIC_CHECKS) -> list:
    """A Solution cell for ``obj`` (its points, from the rubric, said above the code) and right after it its
    Check cell, ``check_<name>(<name>)`` (grade_id ``test_<name>``) with the hidden and semantic tests the
    rubric gives it and their points."""
    name = obj.__name__
    row = rubric_row(name)
    source = f"from {checks} import check_{name}\n\ncheck_{name}({name})"
    semantic = ""
    if row.semantic:
        from autograder.semantic import SEMANTIC

        check = SEMANTIC[name].__name__
        semantic = f"from autograder.semantic import {check}\n{check}({name})"
    return [Solution(obj, note=f"{row.split()}."),
            Check(f"test_{name}", row.public, source, hidden_points=row.hidden, semantic=semantic,
                  semantic_points=row.semantic)]


def written(grade_id: str, answer: str = "") -> Reflection:
    """The Reflection cell of a written answer of the rubric: its question and points from the rubric, and an
    optional model answer (solution notebook only)."""
    from autograder.rubric import RUBRICS, question_markdown

    rows = [row for table in RUBRICS.values() for row in table.written if row.grade_id == grade_id]
    if len(rows) != 1:
        raise ValueError(f"{grade_id} must be a written answer of exactly one part's rubric (autograder/rubric.py).")
    return Reflection(grade_id, rows[0].points, question_markdown(rows[0]), answer)
