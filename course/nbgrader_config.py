"""nbgrader's configuration for this course (nbgrader reads ``nbgrader_config.py`` from the working folder).

Run nbgrader from this folder, e.g. ``cd course && nbgrader generate_assignment partB --force``, or use
``course release``, which regenerates ``solutions/`` from the templates first. The course root is the
repository root: ``solutions/<part>/`` is the source (instructor notebooks), ``assignments/<part>/`` the
release (student notebooks). The gradebook ``gradebook.db`` lands in the root and is not committed.
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

# Each cell may import torch and diffusers (~5 s cold) or run a public check: allow 5 minutes per cell.
c.Execute.timeout = 300
c.Execute.interrupt_on_timeout = True

# Released notebooks carry no outputs (ClearOutput is in generate_assignment's preprocessors already).
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
