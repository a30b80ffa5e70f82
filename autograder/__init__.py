"""Grading of submitted notebooks (issue 6): notebook reading, isolation, checks and reports."""
