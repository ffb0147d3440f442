"""Benchmarks of splitenc_plugin (run from the repository root: ``python -m bench.<name>``).

Every benchmark measures its variants side by side in one run (interleaved
repetitions, medians) and prints a table with ratios; ``--smoke`` runs a
handful of steps only, to check that the table is produced (the long tests:
``SPLITENC_ALL_TESTS=1 make test``, and CI).
See ``bench/README.md``.
"""
