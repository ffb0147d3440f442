"""User-facing error types of splitenc_plugin.

Every error a user can fix (a bad binding, a missing data file, an unknown
study) derives from :class:`SplitencUserError`. Inside dlib processes the compat
layer prints these as one line (problem and fix) instead of a traceback; set
``SPLITENC_TRACEBACK=1`` to see the traceback as well.
"""

from __future__ import annotations


class SplitencUserError(ValueError):
    """An error caused by input the user can fix; the message says how."""


class ConfigError(SplitencUserError):
    """An invalid gin binding or configuration value."""


class DatasetUnavailableError(SplitencUserError, FileNotFoundError):
    """A dlib dataset whose files are missing or malformed."""
