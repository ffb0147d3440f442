"""The plugin's studies (the paper's Sec 5, a capacity control) as dlib ``Study`` objects.

The compat layer merges :data:`STUDIES` into dlib's ``reproduce.STUDIES`` when
``disentanglement_lib.config.reproduce`` is imported, so dlib's own console
script runs them verbatim::

    dlib_reproduce --study=split_encoder_study_v1 --model_num=0
    dlib_reproduce --study=correlated_noise_study_v1 --model_num=30 --only_print

The grids (which model_num is which dataset / model / encoder / sigma / seed)
live in :mod:`splitenc_plugin.studies.grid`, which needs neither TensorFlow nor
dlib; this module only adapts them to dlib's ``Study`` interface. All studies
postprocess with dlib's ``mean`` and ``sampled`` representations and evaluate
dlib's MIG config, exactly like dlib's ``unsupervised_study_v1``, and add our
``mean_logvar`` representation with the MI decomposition metric.

This module imports dlib; ``import splitenc_plugin`` does not import it.
"""

from __future__ import annotations

from disentanglement_lib.config import study as dlib_study

from splitenc_plugin import gin_dir
from splitenc_plugin.studies.grid import (
    EVAL_CONFIGS,
    GRIDS,
    POSTPROCESS_CONFIGS,
    StudyGrid,
    config_file,
)

__all__ = ["STUDIES", "PaperStudy", "config_file"]

class PaperStudy(dlib_study.Study):
    """One of the paper's studies, in dlib's ``Study`` interface.

    Attributes:
      grid: The study's :class:`~splitenc_plugin.studies.grid.StudyGrid`.
    """

    def __init__(self, grid: StudyGrid) -> None:
        self.grid = grid

    @property
    def name(self) -> str:
        """The study name."""
        return self.grid.name

    def __len__(self) -> int:
        return len(self.grid)

    def get_model_config(self, model_num: int = 0) -> tuple[list[str], str]:
        """Returns (model bindings, model config file), as dlib's studies do."""
        spec = self.grid.spec(model_num)
        return spec.bindings, str(gin_dir() / spec.config)

    def get_postprocess_config_files(self) -> list[str]:
        """dlib's ``mean`` and ``sampled`` representations, and our ``mean_logvar``."""
        return [config_file(name) for name in POSTPROCESS_CONFIGS]

    def get_eval_config_files(self) -> list[str]:
        """dlib's MIG config, our MI decomposition (study variant) and MIG per factor."""
        return [config_file(name) for name in EVAL_CONFIGS]


STUDIES: dict[str, PaperStudy] = {name: PaperStudy(grid) for name, grid in GRIDS.items()}
"""Study name -> study; merged into dlib's ``reproduce.STUDIES`` by the compat layer."""
