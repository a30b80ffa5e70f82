"""Moved to :mod:`fwd_kit.checks.public_b` (the public checks ship in the student kit); this name is an alias."""

import sys

from fwd_kit.checks import public_b as _module

sys.modules[__name__] = _module
