"""The studies: grids, the compared axis and its values, and their configs.

:mod:`.grid` is the one source that the runner, the aggregator, the figures
and ``bench/`` read (pure Python, no TensorFlow); :mod:`.dlib_studies` wraps
the grids as dlib ``Study`` objects for ``dlib_reproduce`` (imports dlib).
"""
