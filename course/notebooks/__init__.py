"""The course notebooks: templates (``partA``, ``partB``), the builder and the nbgrader release.

``cells`` defines the cell types a template is made of; ``build`` turns a template into the solution
notebook in ``solutions/``; ``release`` runs nbgrader to make the student notebooks in ``assignments/``.
"""
