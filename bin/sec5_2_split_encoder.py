#!/usr/bin/env python3
"""Sec 5.2 / Figs 3-8, Appendix C: split encoder vs dlib's conv encoder (split_encoder_study_v1).

One experiment as one command (``--help``; the shared
description: :mod:`splitenc_plugin.experiments`).
"""

import sys
from pathlib import Path

from splitenc_plugin.experiments import main

if __name__ == "__main__":
    sys.exit(main(Path(__file__).stem))  # the script's name is its experiment's key
