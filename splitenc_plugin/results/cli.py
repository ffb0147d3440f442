"""``splitenc_aggregate``: the command line of :func:`splitenc_plugin.results.aggregate.aggregate`.

Exit codes: 0 done; 2 a user error (no such directory or study, no finished
job, an unreadable ``done.json`` or ``--selections`` file), with one line on
stderr and nothing written.
"""

from __future__ import annotations

import argparse
import sys

from splitenc_plugin.errors import SplitencUserError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``splitenc_aggregate``; returns the exit code."""
    import matplotlib

    matplotlib.use("Agg")  # the command only writes files; importing figures sets nothing
    from splitenc_plugin.results.aggregate import aggregate

    parser = argparse.ArgumentParser(
        prog="splitenc_aggregate",
        description="Aggregate splitenc_reproduce / dlib_reproduce results: results.csv, "
                    "summary.md and the paper's figures.")
    parser.add_argument("directory", nargs="+",
                        help="the --output_directory of splitenc_reproduce; several to "
                             "aggregate them together (e.g. a study run with and without a "
                             "--gin_config fragment)")
    parser.add_argument("--output_dir", "--output_directory", dest="output_dir",
                        help="where to write (default: DIRECTORY; required with several)")
    parser.add_argument("--study", help="only this study (default: every study found)")
    parser.add_argument("--no_visualize", action="store_true",
                        help="skip the Appendix C reconstructions/traversals figures")
    parser.add_argument("--selections", metavar="FILE",
                        help="the --selections file of splitenc_reproduce: no verdict on a "
                             "comparison until all of its planned jobs have finished")
    args = parser.parse_args(argv)
    try:
        directory = args.directory[0] if len(args.directory) == 1 else args.directory
        result = aggregate(directory, args.output_dir, args.study,
                           visualize=not args.no_visualize, selections=args.selections)
    except SplitencUserError as exc:
        print(f"splitenc_aggregate: error: {exc}", file=sys.stderr)
        return 2
    print(result["table"])
    print(f"wrote {result['csv']}\nwrote {result['summary']}")
    for path in result["figures"]:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
