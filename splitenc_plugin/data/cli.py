"""The ``splitenc_data`` command: generate dSprites and check dlib's datasets.

Usage::

    splitenc_data dsprites [--output_dir DIR] [--force]
    splitenc_data shapes3d --from 3dshapes.h5 [--output_dir DIR] [--force]
    splitenc_data check [--data_root DIR] [NAME ...]

``DIR`` defaults to ``$DISENTANGLEMENT_LIB_DATA``, where dlib looks for its
data. ``shapes3d`` converts DeepMind's ``3dshapes.h5`` to the npz dlib reads
(:mod:`splitenc_plugin.data.shapes3d`). ``check`` exits 0 when listing every dataset; given names, it exits 1
unless all of them are present, so scripts can use it as a guard. It reads each
npz file's content once per file version, to find damaged bytes
(:func:`splitenc_plugin.data.lean_data.verify_npz`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from splitenc_plugin.data import dsprites, fingerprint, registry
from splitenc_plugin.data import shapes3d as shapes3d_data
from splitenc_plugin.errors import SplitencUserError, refuse_file_as_directory


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="splitenc_data",
        description="Generate the dSprites file and check the datasets dlib reads.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    gen = commands.add_parser(
        "dsprites", help="write dsprites/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz",
        description="Render dSprites procedurally (same factors, format and order as "
                    "DeepMind's file; our own pixels) into DIR/dsprites/. A file already "
                    "there is never replaced unasked: a valid one of this renderer, or not "
                    "ours (DeepMind's), is kept; a malformed one stops the command (it may be "
                    "a partial copy); one made by an older renderer of ours is kept beside "
                    "it as <file>.renderer-vN (never over an existing file) before the "
                    "current one is written.")
    gen.add_argument("--output_dir", default=None,
                     help=f"data root to write into (default: ${registry.ENV_VAR})")
    gen.add_argument("--force", action="store_true",
                     help="replace whatever file is there (valid, malformed or not ours) "
                          "with the current rendering, keeping nothing aside")
    gen.set_defaults(run=lambda args: _generate(args.output_dir, args.force))
    conv = commands.add_parser(
        "shapes3d", help="convert DeepMind's 3dshapes.h5 to the npz dlib reads",
        description="Convert DeepMind's 3dshapes.h5 (images (480000, 64, 64, 3) uint8, "
                    "labels (480000, 6)) into DIR/" + registry.SHAPES3D_FILE + ", streaming, "
                    "after checking the file's factor layout.")
    conv.add_argument("--from", dest="source", required=True, metavar="H5",
                      help="DeepMind's 3dshapes.h5")
    conv.add_argument("--output_dir", default=None,
                      help=f"data root to write into (default: ${registry.ENV_VAR})")
    conv.add_argument("--force", action="store_true",
                      help="convert even if a valid npz is already there")
    conv.add_argument("--block", default=None, metavar="S1,...,S6",
                      help="convert a prefix block of the layout (test fixtures only), "
                           "e.g. 1,1,1,2,4,15")
    conv.set_defaults(run=lambda args: _convert_shapes3d(args.source, args.output_dir,
                                                         args.force, args.block))
    check = commands.add_parser(
        "check", help="list dlib's datasets as present / missing / malformed",
        description="Check the files each dlib dataset reads: their layout from their "
                    "headers, and every npz member against its stored CRC-32 (read once per "
                    "file version; remembered in the lean loaders' cache directory).")
    check.add_argument("--data_root", default=None,
                       help=f"data root to check (default: ${registry.ENV_VAR}, else '.')")
    check.add_argument("names", nargs="*", metavar="NAME",
                       help=f"datasets to check (default: all of {', '.join(registry.DATASETS)})")
    check.set_defaults(run=lambda args: _check(args.data_root, args.names))
    return parser


def _output_root(output_dir: str | None) -> str:
    """The data root to write into.

    Raises:
      SplitencUserError: If none is named, or the one named is a file.
    """
    root = output_dir if output_dir is not None else os.environ.get(registry.ENV_VAR)
    if not root:
        raise SplitencUserError(
            f"no output directory: pass --output_dir DIR or set {registry.ENV_VAR} (the "
            "directory dlib reads its data from)")
    source = "--output_dir" if output_dir is not None else f"${registry.ENV_VAR}"
    refuse_file_as_directory(root, source, "dlib reads its data from")
    return root


def _output_file(root: str, relative: str) -> str:
    """The output file's path, refusing (before any work) a file where its directory goes,
    or a directory where it goes."""
    path = os.path.join(root, relative)
    # The directories between root and the file (root itself is checked by
    # _output_root), walked by name so that 'a//b' or 'x/../y' roots end too.
    directory = root
    for part in Path(relative).parent.parts:
        directory = os.path.join(directory, part)
        if os.path.exists(directory) and not os.path.isdir(directory):
            raise SplitencUserError(
                f"cannot write {path}: {directory} is a file, where its directory should be; "
                f"move that file away, or pass another --output_dir")
    if os.path.isdir(path):  # no free space or permission would fix that, not even --force
        raise SplitencUserError(f"cannot write {path}: it is a directory, where the file "
                                "should be; move it away, or pass another --output_dir")
    return path


def _unwritable(path: str, exc: OSError, need_bytes: float) -> SplitencUserError:
    """One line for an output that could not be written (disk full, permissions, ...)."""
    culprit = f" ({exc.filename})" if exc.filename and exc.filename != path else ""
    need = (f"{need_bytes / 1e9:.1f} GB" if need_bytes >= 1e9 else f"{need_bytes / 1e6:.1f} MB")
    return SplitencUserError(
        f"cannot write {path}: {exc.strerror or exc}{culprit}; nothing was written. The output "
        f"needs ~{need} free in a writable directory: free space or fix the permissions, or "
        f"pass another --output_dir")


def _keep_aside(path: str, version: int) -> str:
    """Gives an older renderer's file a second name beside it, never over an existing file.

    The name is ``<path>.renderer-v<version>``, else ``...renderer-v<version>.2``,
    ``.3`` ... A hard link: ``path`` keeps its file until the new one replaces it
    atomically, and the link fails rather than replace a file of that name.

    Raises:
      SplitencUserError: If no such name can be made.
    """
    base = f"{path}.renderer-v{version}"
    for k in range(1, 100):
        aside = base if k == 1 else f"{base}.{k}"
        try:
            # A symlinked data file is kept as a link to the same target (the
            # replace swaps only the link); following it could cross filesystems.
            os.link(path, aside, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError as exc:
            raise SplitencUserError(
                f"{path} was made by renderer v{version} and is kept, not replaced, but it "
                f"cannot be kept as {aside} ({exc.strerror}): move it away yourself, or pass "
                f"--force to replace it") from None
        return aside
    raise SplitencUserError(f"{path} was made by renderer v{version}; {base} and {base}.2 "
                            f"... .99 all exist: move some away, or pass --force to replace it")


def _generate(output_dir: str | None, force: bool) -> int:
    root = _output_root(output_dir)
    target = _output_file(root, registry.DSPRITES_FILE)
    status = registry.check_dataset("dsprites_full", root, verify=True)
    current = dsprites.RENDERER_VERSION
    aside = None
    if status.status == registry.MALFORMED:
        # It may be a partial copy of DeepMind's file, or someone's reduced file:
        # never replaced unasked.
        if not force:
            raise SplitencUserError(
                f"{status.path} {status.detail}; it was kept (it may be a partial copy of "
                f"DeepMind's file): move it away, or pass --force to replace it with our "
                f"rendering")
        print(f"{status.path} {status.detail}; replacing it (--force)")
    elif status.ok and not force:
        version = fingerprint.dsprites_renderer_version(status.path)
        if version == current:
            print(f"{status.path} is already present and valid (use --force to regenerate)")
            return 0
        if version is None or version > current:
            # Someone's own copy (e.g. DeepMind's file), or a newer splitenc's.
            made = ("is not ours (DeepMind's file?)" if version is None
                    else f"was made by renderer v{version}, newer than this one (v{current})")
            print(f"{status.path} {made}; kept (use --force to replace it with renderer "
                  f"v{current})")
            return 0
        # Results were made on it (e.g. the first campaign's, on v1): kept, not replaced.
        aside = _keep_aside(status.path, version)
        print(f"{status.path} was made by renderer v{version}; kept it as {aside}; writing "
              f"renderer v{current}")
    start = time.perf_counter()
    path = None
    try:
        path = dsprites.generate_dsprites(root)
    except OSError as exc:
        raise _unwritable(target, exc, 20e6) from None
    finally:
        if path is None and aside is not None and os.path.samefile(aside, target):
            os.remove(aside)  # nothing was written: the old file is still in place
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB, "
          f"{time.perf_counter() - start:.1f} s)")
    if root != os.environ.get(registry.ENV_VAR):
        print(f"dlib reads it when {registry.ENV_VAR}={os.path.abspath(root)}")
    return 0


def _convert_shapes3d(source: str, output_dir: str | None, force: bool,
                      block: str | None) -> int:
    root = _output_root(output_dir)
    if not os.path.isfile(source):
        raise SplitencUserError(f"--from {source} is not a file; pass DeepMind's 3dshapes.h5 "
                                "(github.com/deepmind/3d-shapes)")
    try:
        sizes = None if block is None else [int(s) for s in block.split(",")]
    except ValueError:
        raise SplitencUserError(f"--block takes one integer per factor, comma-separated "
                                f"(e.g. 1,1,1,2,4,15), got {block!r}") from None
    target = _output_file(root, registry.SHAPES3D_FILE)
    need = shapes3d_data.output_bytes(sizes)  # also checks the block, before any work
    status = registry.check_dataset("shapes3d", root, verify=True)
    if status.ok and not force:
        if block is None:
            print(f"{status.path} is already present and valid (use --force to convert again)")
            return 0
        # A --block file is a test fixture: never written over a valid dataset unasked.
        raise SplitencUserError(
            f"{status.path} is present and valid; --block would replace it with a block of "
            "it: use another --output_dir, or --force to replace it")
    start = time.perf_counter()
    try:
        path = shapes3d_data.convert_h5(source, root, block_sizes=sizes)
    except OSError as exc:  # reading errors are ConversionErrors: this is the output
        raise _unwritable(target, exc, need) from None
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.1f} MB, "
          f"{time.perf_counter() - start:.1f} s)")
    return 0


def _check(data_root: str | None, names: list[str]) -> int:
    root = registry.default_data_root() if data_root is None else data_root
    statuses = [registry.check_dataset(name, root, verify=True)
                for name in names or registry.DATASETS]
    source = "--data_root" if data_root is not None else (
        f"${registry.ENV_VAR}" if registry.ENV_VAR in os.environ
        else f"default '.', ${registry.ENV_VAR} is not set")
    refuse_file_as_directory(root, f"data root ({source})", "dlib reads its data from")
    missing = "" if os.path.isdir(root) else "; it does not exist"
    print(f"data root: {os.path.abspath(root)} ({source}{missing})")
    width = max(len(s.name) for s in statuses)
    for status in statuses:
        print(f"{status.name:<{width}}  {status.status:<9}  "
              + (os.path.relpath(status.path, root) if status.path else "(no files needed)"))
        if not status.ok:
            print(f"{'':<{width}}  {status.message}")
    return 0 if not names or all(s.ok for s in statuses) else 1


def main(argv: list[str] | None = None) -> int:
    """Runs ``splitenc_data``.

    Args:
      argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
      The process exit code.
    """
    args = _parser().parse_args(argv)
    try:
        return args.run(args)  # each subcommand's own function (set_defaults)
    except SplitencUserError as exc:  # bad input: one line naming problem and fix
        print(f"splitenc_data: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
