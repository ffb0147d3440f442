#!/usr/bin/env python3
"""Capacity control: split vs parameter-matched split vs widened shared encoder (split_encoder_capacity_study_v1).

Runs the study (resumable), aggregates it, prints the summary and figure paths.
``--steps N`` for a smaller budget than the paper's 300,000; ``--scheduler`` /
``--cluster slurm`` and every other ``splitenc_reproduce`` option pass through;
``--smoke`` checks the installation in a minute. See
:mod:`splitenc_plugin.experiments`.
"""

import sys

from splitenc_plugin.experiments import main

if __name__ == "__main__":
    sys.exit(main("capacity_control"))
