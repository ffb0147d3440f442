"""The child process of :mod:`bench.dsprites_gen`: generates dSprites, or only imports.

Run by :mod:`bench.dsprites_gen`, never by hand::

    python -m bench.dsprites_gen_child --worker SPEC OUTPUT_DIR

``SPEC`` is JSON: ``generate`` (false: the imports-only baseline) and
``subset`` (as :func:`splitenc_plugin.data.dsprites.generate_dsprites` takes
it; null: the full file). Prints one line, ``SECONDS <generation seconds>``.

The parent reads this process's peak RSS and compares it with the baseline's,
so the module imports the standard library only (what the generator imports
anyway) and reads its arguments from ``sys.argv`` by hand (no argparse): both
variants import exactly :mod:`splitenc_plugin.data.dsprites` and what it
needs.
"""

from __future__ import annotations

import json
import sys
import time


def generate(output_dir: str, subset: dict | None, run: bool) -> float:
    """Imports the generator and, if ``run``, generates; returns the generation's seconds.

    Args:
      output_dir: Where the dSprites file goes.
      subset: Factor values to generate (None: the full file).
      run: False for the imports-only baseline (then about 0 seconds).

    Returns:
      Seconds from after the import to the end of the generation.
    """
    from splitenc_plugin.data import dsprites

    start = time.perf_counter()
    if run:
        dsprites.generate_dsprites(output_dir, subset=subset)
    return time.perf_counter() - start


def main(argv: list[str]) -> None:
    """Runs :func:`generate` as ``argv`` (the arguments after the program) says."""
    if len(argv) != 3 or argv[0] != "--worker":
        sys.exit(f"usage: python -m bench.dsprites_gen_child --worker SPEC OUTPUT_DIR "
                 f"(got {argv})")
    spec = json.loads(argv[1])
    print("SECONDS", generate(argv[2], spec["subset"], spec["generate"]))


if __name__ == "__main__":
    main(sys.argv[1:])
