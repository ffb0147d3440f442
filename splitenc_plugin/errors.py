"""User-facing error types of splitenc_plugin.

Every error a user can fix (a bad binding, a missing data file, an unknown
study) derives from :class:`SplitencUserError`. Inside dlib processes the compat
layer prints these as one line (problem and fix) instead of a traceback; set
``SPLITENC_TRACEBACK=1`` to see the traceback as well.
"""

from __future__ import annotations

import os


class SplitencUserError(ValueError):
    """An error caused by input the user can fix; the message says how."""


class ConfigError(SplitencUserError):
    """An invalid gin binding or configuration value."""


class DatasetUnavailableError(SplitencUserError, FileNotFoundError):
    """A dlib dataset whose files are missing or malformed."""


def refuse_file_as_directory(path: str | os.PathLike, option: str, purpose: str) -> None:
    """Refuse a path given as a directory that exists as a file, before any work.

    Args:
      path: The directory the user named (it need not exist yet).
      option: How the user named it, e.g. ``--output_dir`` or ``$DISENTANGLEMENT_LIB_DATA``.
      purpose: What the directory is for, completing "name the directory ...".

    Raises:
      SplitencUserError: If ``path`` exists and is not a directory.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise SplitencUserError(f"{option} {path} is a file, not a directory; name the "
                                f"directory {purpose}")


def env_switch(name: str, default: bool) -> bool:
    """Reads an on/off ``SPLITENC_*`` environment switch (1/true/yes/on, 0/false/no/off).

    Args:
      name: The environment variable.
      default: Its value when unset or empty.

    Raises:
      ConfigError: For any other value, naming the variable and what it takes.
    """
    from _splitenc_plugin_hook import (
        env_flag,  # the one parser; stdlib-only, for start-up
    )

    try:
        return env_flag(name, default)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
