"""Moved to :mod:`fwd_kit.data` (the student kit); this name is an alias of that module."""

import sys

from fwd_kit import data as _module

sys.modules[__name__] = _module
