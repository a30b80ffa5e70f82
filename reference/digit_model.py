"""Moved to :mod:`fwd_kit.digit_model` (the student kit); this name is an alias of that module."""

import sys

from fwd_kit import digit_model as _module

sys.modules[__name__] = _module
