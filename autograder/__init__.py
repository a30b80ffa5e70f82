"""Grading of submitted notebooks (issue 6): notebook reading, isolation, checks and reports.

The public checks and the student's side of grading live in the kit (``fwd_kit.checks``,
``fwd_kit.grading``); their old names here (``autograder.public``, ``autograder.child``, …) raise an
ImportError that names the new module (:mod:`fwd_kit.moved`).
"""

from fwd_kit import moved

moved.install()
