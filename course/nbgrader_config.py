"""nbgrader's configuration for this course (nbgrader reads ``nbgrader_config.py`` from the working folder).

Run nbgrader from this folder, e.g. ``cd course && nbgrader generate_assignment partB`` (it regenerates the
release: ``force`` is on), or use ``course release``, which regenerates ``solutions/`` from the templates first.
The course root is the repository root: ``solutions/<part>/`` is the source (instructor notebooks),
``assignments/<part>/`` the release (student notebooks). The gradebook ``gradebook.db`` lands in the root and
is not committed.

Grading with nbgrader: put each hand-in at ``<root>/submitted/<student>/<part>/<part>.ipynb`` — or let
nbgrader's exchange (``<root>/exchange``, course id ``fun-with-diffusion``) carry it: ``nbgrader
release_assignment <part>``; students ``nbgrader fetch_assignment <part>`` and ``nbgrader submit <part>``; then
``nbgrader collect <part>`` — and run ``cd course && nbgrader autograde <part> && nbgrader generate_feedback
<part>`` (``autograded/`` and ``feedback/`` appear in the root). The notebooks run in FAST mode there (``NBGRADER_EXECUTION`` switches
it on; ``FWD_DEVICE=cpu`` keeps them off a GPU the grader may have). ``tests/test_nbgrader_roundtrip.py``
runs this pipeline through nbgrader's Python API (``course.notebooks.release.nbgrader_api``).
"""

import os

from nbformat import from_dict
from nbgrader.preprocessors import ClearHiddenTests, OverwriteCells

c = get_config()  # noqa: F821 (provided by traitlets when it loads this file)

# The repository holding solutions/ and assignments/ (this file sits in <root>/course/).
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
c.CourseDirectory.root = ROOT
c.CourseDirectory.course_id = "fun-with-diffusion"  # nbgrader's exchange files releases and hand-ins by course

# generate_assignment replaces an earlier release (without force it skips an existing assignments/<part>/).
c.GenerateAssignment.force = True

# nbgrader's exchange (release_assignment, fetch_assignment, submit, collect) inside the course root, not in
# /usr/local/share/nbgrader/exchange (which needs root); release_assignment creates it, writable by all as
# nbgrader's exchange requires (students submit into it).
c.Exchange.root = os.path.join(ROOT, "exchange")
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


class RestoreHiddenTests(OverwriteCells):
    """nbgrader's OverwriteCells, without its warning for test cells a student left alone.

    Every test cell of a release lacks its hidden block, so autograde finds each one "changed" and warns
    ("Attribute 'checksum' for cell test_... has changed!"), once per test cell, for an untouched notebook. The
    cell is restored all the same; the warning stays for a cell that differs from its released version."""

    def report_change(self, name, attr, old, new):
        if attr == "checksum" and self._released_source(name) == self._submitted_source:
            self.log.debug("restored the hidden tests of %s", name)
            return
        super().report_change(name, attr, old, new)

    def preprocess_cell(self, cell, resources, cell_index):
        self._submitted_source = cell.source
        return super().preprocess_cell(cell, resources, cell_index)

    def _released_source(self, grade_id: str) -> str:
        """The cell's source as generate_assignment released it: the gradebook's copy without its hidden block."""
        source = self.gradebook.find_source_cell(grade_id, self.notebook_id, self.assignment_id)
        cell = from_dict({"cell_type": source.cell_type, "source": source.source, "metadata": {}})
        ClearHiddenTests(parent=self)._remove_hidden_test_region(cell)
        return cell.source


c.Autograde.sanitize_preprocessors = [
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    RestoreHiddenTests,
    "nbgrader.preprocessors.CheckCellMetadata",
]
