"""splitenc_plugin: the Split Encoder and correlated-noise reparameterization for dlib.

Importing this package registers the plugin's gin configurables
(``split_conv_encoder``, ``split_fc_encoder``, ``reparameterization``,
``factorized_noise``, ``correlated_noise``) and adds the plugin's ``gin/``
directory to gin's config search path, so that our configs can ``include``
their fragments from any working directory. It does not import TensorFlow:
the configurables import it when they are called. gin files use it as
``import splitenc_plugin``; importing it twice is harmless.

The compat layer that makes disentanglement_lib 1.5 run on TF 2.15 is applied
by an import hook (``_splitenc_plugin_hook``, :mod:`splitenc_plugin.compat`),
not by importing this package.
"""

from pathlib import Path

import gin
from splitenc_plugin import encoders, noise  # noqa: F401  (registers configurables)

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


if str(gin_dir()) not in gin.config._LOCATION_PREFIXES:
    gin.add_config_file_search_path(str(gin_dir()))
