"""Imported first by a process that is about to grade (the batch's forkserver, ``course.gradescope``): the
grader's modules, loaded with the garbage collector off and then frozen, without the packages no check uses
(:mod:`autograder.startup`)."""

from autograder.startup import dynamo_on_demand, imports_unscanned, without_unused_packages

without_unused_packages()
with imports_unscanned():
    dynamo_on_demand()
    import autograder.grade  # noqa: F401
