"""Instructor workflow and the ``course`` command line (a thin layer over ``reference`` and ``autograder``)."""
