"""How closely our dSprites file matches real dSprites frames.

The reference frames are frames of DeepMind's public README animation
``dsprites.gif`` (320 native 64 x 64 binary frames; the project keeps every
second one in ``../shared/reference/dsprites_real_frames.npz``). The animation
walks the factor grid one factor at a time, so each frame's factor values
follow from its index alone (:func:`animation_factors`). The schedule was read
off the frames' areas, bounding boxes and centroids (the reference README's
table) and is confirmed by the fit: at these factor values the renderer
reproduces 154 of the 160 even frames pixel for pixel (in-sample: the
renderer was fitted to these frames; the odd ones, the held-out check, are not
in the reference data).

    heart (frames 0-191), then ellipse (192-255), then square (256-319);
    each shape at orientation 0 and position (0, 0) unless said otherwise:
      +0..5    scale 0 -> 5           +6..11   scale 5 -> 0
      +12..17  scale 0 -> 5           +18..57  orientation 0 -> 39 (scale 5)
      heart only, scale 5:
      +58..89  posY 0 -> 31           +90..121 posX 0 -> 31 (posY 31)
      +122..153 posY 31 -> 0 (posX 31) +154..185 posX 31 -> 0 (posY 0)
      last 6 frames of each shape: scale 5 -> 0

:func:`measure` reports, per shape, the IoU of each frame with the image our
file holds at the frame's factor values, how many match exactly, and whether
the best match over the whole file has the frame's shape.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from splitenc_plugin.data import dsprites

__all__ = ["ShapeFidelity", "animation_factors", "measure"]

# (first frame, shape class) of each shape's segment of the animation.
_SEGMENTS = ((0, 2), (192, 1), (256, 0))
_FRAMES = 320
_LAST = dsprites.LATENT_SIZES[4] - 1   # position 31


def animation_factors(frame_index: int) -> tuple[int, int, int, int, int]:
    """The factor classes an animation frame shows.

    Args:
      frame_index: Frame of ``dsprites.gif``, 0..319.

    Returns:
      ``(shape, scale, orientation, posX, posY)`` class indices, as
      :func:`splitenc_plugin.data.dsprites.render` takes them.

    Raises:
      ValueError: For an index outside the animation.
    """
    if not 0 <= frame_index < _FRAMES:
        raise ValueError(f"dsprites.gif has frames 0..{_FRAMES - 1}, not {frame_index}")
    start, shape = max(s for s in _SEGMENTS if s[0] <= frame_index)
    g = frame_index - start
    end = next((s for s, _ in _SEGMENTS if s > start), _FRAMES) - start
    top = dsprites.LATENT_SIZES[2] - 1
    if g >= end - 6:
        return shape, end - 1 - g, 0, 0, 0
    if g < 18:
        scale = (g, top - (g - 6), g - 12)[g // 6]
        return shape, scale, 0, 0, 0
    if g < 58:
        return shape, top, g - 18, 0, 0
    # The heart's position tour, 32 frames per leg.
    leg, k = divmod(g - 58, 32)
    position = ((0, k), (k, _LAST), (_LAST, _LAST - k), (_LAST - k, 0))[leg]
    return (shape, top, 0, *position)


@dataclass(frozen=True)
class ShapeFidelity:
    """Fidelity of one shape's frames.

    Attributes:
      shape: Shape name.
      frames: Number of frames.
      median_iou: Median IoU with our image at the frame's factor values.
      min_iou: Smallest such IoU.
      exact: Frames our file reproduces pixel for pixel.
      best_match_right_shape: Frames whose best match over the whole file
        (by IoU) has the frame's shape; None if not measured.
    """

    shape: str
    frames: int
    median_iou: float
    min_iou: float
    exact: int
    best_match_right_shape: int | None


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of binary images a (N, P) and b (N, P), row by row."""
    inter = np.logical_and(a, b).sum(axis=1)
    return inter / np.maximum(np.logical_or(a, b).sum(axis=1), 1)


def _best_shape(frames: np.ndarray, blocks: Iterator[tuple[int, np.ndarray]]) -> np.ndarray:
    """Shape class of the best IoU match of each frame over all images in blocks."""
    f = frames.reshape(len(frames), -1).astype(np.float32)
    f_area = f.sum(axis=1)
    best = np.full(len(frames), -1.0)
    shape = np.full(len(frames), -1)
    for block_shape, images in blocks:
        x = images.reshape(-1, f.shape[1]).astype(np.float32)
        inter = x @ f.T                                        # (images, frames)
        iou = inter / (x.sum(axis=1)[:, None] + f_area[None, :] - inter)
        top = iou.max(axis=0)
        better = top > best
        best[better], shape[better] = top[better], block_shape
    return shape


def _file_blocks() -> Iterator[tuple[int, np.ndarray]]:
    """(shape class, images) for each (shape, scale, orientation) of the full file."""
    for sh in range(dsprites.LATENT_SIZES[1]):
        for sc in range(dsprites.LATENT_SIZES[2]):
            for ori in range(dsprites.LATENT_SIZES[3]):
                yield sh, dsprites.render_grid(sh, sc, ori)


def measure(frames: np.ndarray, frame_index: Sequence[int],
            best_match: bool = True) -> list[ShapeFidelity]:
    """Measures our renderer against real frames.

    Args:
      frames: Real frames, shape (N, 64, 64), values 0/1.
      frame_index: Each frame's index in ``dsprites.gif``.
      best_match: Also search the whole file (737,280 images, ~1 min) for each
        frame's best match.

    Returns:
      One :class:`ShapeFidelity` per shape present, in shape-class order.
    """
    frames = np.asarray(frames).astype(bool)
    factors = np.array([animation_factors(int(i)) for i in frame_index])
    ours = dsprites.render(*factors.T).astype(bool)
    iou = _iou(ours.reshape(len(ours), -1), frames.reshape(len(frames), -1))
    exact = (ours == frames).all(axis=(1, 2))
    best = _best_shape(frames, _file_blocks()) if best_match else None
    report = []
    for sh, name in enumerate(dsprites.SHAPE_NAMES):
        mine = factors[:, 0] == sh
        if not mine.any():
            continue
        report.append(ShapeFidelity(
            shape=name, frames=int(mine.sum()), median_iou=float(np.median(iou[mine])),
            min_iou=float(iou[mine].min()), exact=int(exact[mine].sum()),
            best_match_right_shape=None if best is None else int((best[mine] == sh).sum())))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m splitenc_plugin.data.dsprites_fidelity FRAMES.npz``: the fidelity table.

    FRAMES.npz holds ``frames`` (N, 64, 64) and ``frame_index`` (N,), as
    ``../shared/reference/dsprites_real_frames.npz`` does.
    """
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("frames", help="npz with 'frames' and 'frame_index'")
    parser.add_argument("--no_best_match", action="store_true",
                        help="skip the search over the whole file (~15 s)")
    args = parser.parse_args(argv)
    with np.load(args.frames) as data:
        frames, index = data["frames"], data["frame_index"]
    print("| shape | frames | median IoU | min IoU | pixel-exact | best match has its shape |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in measure(frames, index, best_match=not args.no_best_match):
        best = "—" if r.best_match_right_shape is None else r.best_match_right_shape
        print(f"| {r.shape} | {r.frames} | {r.median_iou:.3f} | {r.min_iou:.3f} | {r.exact} "
              f"| {best} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
