"""Reading finished jobs: results table, comparisons and verdicts, report, figures.

``splitenc_aggregate`` (:mod:`.aggregate`) reads the small JSON files of
finished jobs; :mod:`.figures`, :mod:`.traversals` and :mod:`.learning_curves`
draw the paper's figures and Appendix C traversals.
"""
