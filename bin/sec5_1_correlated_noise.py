#!/usr/bin/env python3
"""Sec 5.1 / Fig 2: correlated vs factorized reparameterization noise (correlated_noise_study_v1).

One experiment as one command (``--help``; the shared
description: :mod:`splitenc_plugin.experiments`).
"""

import sys
from pathlib import Path

from splitenc_plugin.experiments import main

if __name__ == "__main__":
    sys.exit(main(Path(__file__).stem))  # the script's name is its experiment's key
