"""The student kit of fun-with-diffusion: what students install beside their notebooks.

It holds only what students are given — the provided helpers (noise, strided timesteps, the learned
variance, input checks, images, masks, grids), model and prompt-embedding loading, the course's digit
model and its embeddings, MNIST loading, figure helpers — and the **public checks**, which compare a
student's output with expectations stored as data (:mod:`fwd_kit.expected`). It never holds a function
that computes a graded answer: those live in the instructors' ``reference`` package, and the checks on
hidden inputs live only where grading happens (``autograder``).
"""

__version__ = "0.1.0"
