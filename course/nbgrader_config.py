"""nbgrader's configuration for this course (nbgrader reads ``nbgrader_config.py`` from the working folder).

Run nbgrader from this folder, e.g. ``cd course && nbgrader generate_assignment partB --force``, or use
``course release``, which regenerates ``solutions/`` from the templates first. The course root is the
repository root: ``solutions/<part>/`` is the source (instructor notebooks), ``assignments/<part>/`` the
release (student notebooks). The gradebook ``gradebook.db`` lands in the root and is not committed.

Grading with nbgrader: put each hand-in at ``<root>/submitted/<student>/<part>/<part>.ipynb``, then
``cd course && nbgrader autograde <part> && nbgrader generate_feedback <part>`` (``autograded/`` and
``feedback/`` appear in the root). The notebooks run in FAST mode there (``NBGRADER_EXECUTION`` switches
it on; ``FWD_DEVICE=cpu`` keeps them off a GPU the grader may have). ``tests/test_nbgrader_roundtrip.py``
runs this pipeline through nbgrader's Python API (``course.notebooks.release.nbgrader_api``).
"""

import os

c = get_config()  # noqa: F821 (provided by traitlets when it loads this file)

# The repository holding solutions/ and assignments/ (this file sits in <root>/course/).
c.CourseDirectory.root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
c.CourseDirectory.source_directory = "solutions"  # instructor notebooks, built by course/notebooks/build.py
c.CourseDirectory.release_directory = "assignments"  # student notebooks, made by generate_assignment

# Never copy into a release what running a notebook in place leaves behind (MNIST, figures).
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "data",
                            "partB_figures", "partB_figures_fast"]

# Per-cell timeout. Measured in FAST mode on CPU (the mode nbgrader's NBGRADER_EXECUTION switches on), one
# thread, 2 cores at load ~4.7: the slowest cell of Part A (loading the digit model) took 13 s, of Part B
# (the imports) 4 s; the slowest test cell, visible and hidden checks together, 4 s. 120 s leaves ~9x for a
# slower grader, and bounds what a student's endless loop costs (each check cell that calls it waits this).
c.Execute.timeout = 120
c.Execute.interrupt_on_timeout = True

# nbgrader scores a test cell 0 when anything reaches stderr, so in the kernels it starts (validate,
# autograde) no library can write there: Python warnings and library log records below ERROR are off,
# progress bars (tqdm) too, and text that C code writes to file descriptor 2 stays in nbgrader's log
# instead of the cell. One OpenMP thread unless the grader's environment says otherwise (the timeout above
# was measured so; several threads on busy cores run these small models many times slower).
c.Execute.extra_arguments = [
    "--HistoryManager.hist_file=:memory:",
    "--IPKernelApp.exec_lines=import logging, os, warnings",
    "--IPKernelApp.exec_lines=warnings.simplefilter('ignore')",
    "--IPKernelApp.exec_lines=logging.disable(logging.WARNING)",
    "--IPKernelApp.exec_lines=os.environ.setdefault('TQDM_DISABLE', '1')",
    "--IPKernelApp.exec_lines=os.environ.setdefault('OMP_NUM_THREADS', '1')",
    "--IPKernelApp.exec_lines=os.environ.setdefault('MKL_NUM_THREADS', '1')",
    "--IPKernelApp.capture_fd_output=False",
]

# Hidden tests: each test cell of solutions/ ends with "### BEGIN HIDDEN TESTS" / check_<name>(<name>, seed=1)
# / "### END HIDDEN TESTS". generate_assignment saves the whole cell in the gradebook, then strips the block
# from the release; autograde overwrites every locked cell with the gradebook's copy (hidden block included).
# The feedback shows what the hidden calls printed but not their source (a traceback of a failing check
# still quotes the lines around it: IPython's context, which nbgrader keeps).
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    "nbgrader.preprocessors.ClearHiddenTests",
]

# Released notebooks carry no outputs (ClearOutput is in generate_assignment's preprocessors already).
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
