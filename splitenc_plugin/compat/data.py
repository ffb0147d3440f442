"""dlib's dataset loading, for every dlib process: a clear error for missing files, lean loaders.

Both patches apply whatever the gin config (they change no result and no
operative config), so a stock dlib config gets them too:

* **The data-file check.** dlib's train, postprocess and evaluate all load
  their dataset first, through ``named_data.get_named_ground_truth_data``;
  before it reads anything, a dataset of the plugin's registry
  (:mod:`splitenc_plugin.data.registry`) whose files are missing or damaged
  stops the run with one :class:`~splitenc_plugin.errors.SplitencUserError`
  naming the file and the fix, in place of dlib's traceback deep inside
  NumPy or h5py.
* **The memory-lean loaders** (:mod:`splitenc_plugin.data.lean_data`):
  dSprites bit-packed, Shapes3D as uint8, each file loaded once per process.
  They give dlib's observations and consume dlib's random numbers exactly (the
  same seed gives the same batches, pixel for pixel), so they are a fix of
  dlib's memory use (stock dlib needs ~24 GB for Shapes3D), not a feature:
  they apply to every dlib process. ``SPLITENC_LEAN_DATA=0`` gives dlib's own
  loaders (to compare against them, ``bench/lean_data.py``).
"""

from __future__ import annotations

import functools
import types

from splitenc_plugin.compat.registry import DSPRITES, NAMED_DATA, SHAPES3D, after_import


@after_import(NAMED_DATA)
def _check_dataset_files(module: types.ModuleType) -> None:
    """``get_named_ground_truth_data`` first checks the files of a dataset the plugin knows."""
    original = module.get_named_ground_truth_data
    if getattr(original, "_splitenc_data_check", False):
        return

    @functools.wraps(original)
    def get_named_ground_truth_data(*args, **kwargs):
        from splitenc_plugin._gin import bound_value
        from splitenc_plugin.data import registry

        name = args[0] if args else kwargs.get("name")
        if name is None:
            name = bound_value("dataset.name")  # None: unbound or scoped, dlib's own error
        if isinstance(name, str) and name in registry.DATASETS:
            registry.require_dataset(name)
        return original(*args, **kwargs)

    get_named_ground_truth_data._splitenc_data_check = True  # type: ignore[attr-defined]
    module.get_named_ground_truth_data = get_named_ground_truth_data


@after_import(DSPRITES)
@after_import(SHAPES3D)
def _lean_datasets(module: types.ModuleType) -> None:
    """dSprites bit-packed, Shapes3D uint8, loaded once (``SPLITENC_LEAN_DATA=0``: dlib's own)."""
    from splitenc_plugin.data import lean_data

    lean_data.install(module)
