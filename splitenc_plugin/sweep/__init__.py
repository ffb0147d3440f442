"""Running studies: plan, lock, execute, pools (local, Dask, batch clusters), the job worker.

``splitenc_reproduce`` (:mod:`.cli`, over :class:`.runner.Runner`) plans a
study's jobs (:mod:`.plan`: each job directory's :class:`~.plan.JobStatus`),
takes each job's lock (:mod:`.lock`), and runs each job in its own process
(:mod:`.execute`, :mod:`.job`) on a pool (:mod:`.pools`, :mod:`.clusters`). The
job reports through ``progress.json`` (:mod:`.progress`), which
:mod:`.display` turns into the progress bar and the dry run's states. What a
job directory holds, and the readers of its markers and results, are
:mod:`.job_files` (also what the aggregator reads jobs through). Nothing
here imports TensorFlow except the job worker (and planning a dlib study, which
reads dlib's ``reproduce.STUDIES``).
"""
