"""splitenc_plugin: the Split Encoder and correlated-noise reparameterization for dlib.

Importing this package registers the plugin's gin configurables (the
encoders ``split_conv_encoder``, ``split_fc_encoder``,
``matched_split_conv_encoder``, ``wide_conv_encoder`` and
``looped_split_conv_encoder``; ``reparameterization``, ``factorized_noise``,
``correlated_noise``; ``input_pipeline``; the postprocessing
``mean_logvar_representation``; the metrics ``mi_decomposition`` and
``factor_mig``) and lets gin find the plugin's
``gin/`` configs (and dlib's own), so that they can ``include`` their
fragments from any working directory. It does not import TensorFlow:
the configurables import it when they are called. gin files use it as
``import splitenc_plugin``; importing it twice is harmless.

The compat layer that makes disentanglement_lib 1.5 run on TF 2.15 is applied
by an import hook (``_splitenc_plugin_hook``, :mod:`splitenc_plugin.compat`),
not by importing this package.
"""

import errno
import os
from pathlib import Path

import gin

from splitenc_plugin import metrics, model  # noqa: F401  (registers configurables)

__version__ = "0.1.0"


def gin_dir() -> Path:
    """The directory holding the shipped gin configs.

    ``splitenc_plugin/gin`` in a wheel install; the repository's top-level
    ``gin/`` in a checkout or an editable install.
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "gin", here.parent / "gin"):
        if (candidate / "fragments").is_dir():
            return candidate
    raise FileNotFoundError(f"splitenc_plugin's gin configs are missing (looked in {here})")


def _dlib_config_dir() -> Path:
    from splitenc_plugin.studies.grid import dlib_config_path  # locates dlib, no import

    return Path(dlib_config_path())


#: Include-path prefix -> (the packaged directory it names, whether a local file
#: of that path still wins). ``splitenc_plugin/`` is always the plugin's ``gin/``:
#: the shipped configs include each other that way, so that a user's own
#: ``factorvae.gin`` in the working directory cannot replace the base config of
#: ``split_factorvae.gin``. ``disentanglement_lib/config/`` is dlib's installed
#: ``config/`` (the shipped configs include dlib's own ``shared.gin``), unless
#: the path exists locally, e.g. in a dlib source checkout, where stock dlib
#: reads the local file too.
PACKAGED_PREFIXES: dict[str, tuple] = {
    "splitenc_plugin/": (gin_dir, False),
    "disentanglement_lib/config/": (_dlib_config_dir, True),
}


def _packaged_path(path: str) -> tuple[Path, Path] | None:
    """(directory, file) that a :data:`PACKAGED_PREFIXES` path names; None for other paths.

    The file need not exist: a missing one is an error naming it, never a local
    file of that name.
    """
    for prefix, (directory, local_wins) in PACKAGED_PREFIXES.items():
        if path.startswith(prefix):
            if local_wins and os.path.isfile(path):
                return None
            root = directory().resolve()
            return root, (root / path[len(prefix):]).resolve()
    return None


def _shipped_fallback(path: str) -> Path | None:
    """The shipped config a plain relative path names when no local file has that name."""
    if os.path.isabs(path) or os.path.isfile(path):
        return None
    candidate = gin_dir() / path
    return candidate if candidate.is_file() else None


def config_path(path: str) -> Path | None:
    """The file gin reads for a config path once this package is imported, if any.

    Args:
      path: As given to gin (``--gin_config``, ``include``): a
        :data:`PACKAGED_PREFIXES` path, a local file, or a path under ``gin/``.

    Returns:
      The file, or None if there is none (gin then fails to find it).
    """
    packaged = _packaged_path(path)
    if packaged is not None:
        root, config = packaged
        return config if config.is_file() and config.is_relative_to(root) else None
    return Path(path) if os.path.isfile(path) else _shipped_fallback(path)


def _open_shipped_config(path: str):
    config = config_path(path)
    if config is None:
        raise FileNotFoundError(errno.ENOENT, "no such packaged gin config", path)
    return open(config)


def _is_shipped_config(path: str) -> bool:
    return _packaged_path(path) is not None or _shipped_fallback(path) is not None


# gin resolves `include` paths against the working directory. Our configs
# include each other as 'splitenc_plugin/fragments/dlib_shared.gin' (and
# dlib's as 'disentanglement_lib/config/...'), so a reader that serves those,
# tried first, makes them work from any directory whatever files it holds.
# (gin's public register_file_reader appends after its resource reader, which
# logs an error for every path it cannot find, hence the insert.)
# Matched by name, not identity, so that re-importing this package is a no-op.
if not any(getattr(check, "__qualname__", "") == _is_shipped_config.__qualname__
           and getattr(check, "__module__", "") == __name__
           for _, check in gin.config._FILE_READERS):
    gin.config._FILE_READERS.insert(0, (_open_shipped_config, _is_shipped_config))
