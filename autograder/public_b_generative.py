"""Moved to :mod:`fwd_kit.checks.public_b_generative` (the public checks ship in the student kit); this name is an alias."""

import sys

from fwd_kit.checks import public_b_generative as _module

sys.modules[__name__] = _module
