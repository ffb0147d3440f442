"""Running studies: plan, lock, execute, pools (local, Dask, batch clusters), the job worker.

``splitenc_reproduce`` (:mod:`.runner`) plans a study's jobs, skips the
finished ones, and runs each in its own process (:mod:`.job`), which reports
through ``progress.json`` (:mod:`.progress`). Nothing here imports TensorFlow
except the job worker.
"""
