"""Shared types and constants of the geometry package: the bottom module that every other module (the warp front end
and both back ends) imports, and which imports nothing from the package itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class GeometryError(ValueError):
    """Invalid geometric input (shapes, intrinsics, transforms, depth); the message says what to fix."""


# Pixel centres exactly on a shared triangle edge must not fall through the cracks of float rounding.
EDGE_EPS = 1e-9
# Coverage factor of a target pixel whose interpolated source reliability is below 0.5 (a guessed depth at an edge):
# it stays in the mask, since its colour is still better than a hole filler's guess, but engines see it as doubtful.
UNRELIABLE_COVERAGE = 0.25
# Two noisy measurements on one surface differ by more than 3 sqrt(2) sigma in about 3 of 1000 neighbour pairs.
NOISE_SIGMAS = 3.0 * 2.0**0.5


@dataclass
class WarpResult:
    """A source view rendered into the target camera. Single frame: image (h, w, 3) in the input's dtype (holes 0),
    depth (h, w) float32 metres along the target optical axis (0 where empty), mask (h, w) bool (a source surface
    landed here), coverage (h, w) float32 in [0, 1] (soft confidence: sampling density times nearness to valid
    pixels). Clip form: the same with a leading T axis."""

    image: np.ndarray
    depth: np.ndarray
    mask: np.ndarray
    coverage: np.ndarray


@dataclass(frozen=True)
class WarpSettings:
    """Tuning of the mesh warp.

    max_depth_ratio, max_parallax_px: a triangle is dropped as spanning a depth discontinuity when its source depths
        differ by more than `max_depth_ratio` (max/min - 1) AND the gap really opens in the target by more than
        `max_parallax_px` pixels; the disocclusion then stays a hole instead of being smeared with foreground colour.
    max_triangle_px: triangles whose target bounding box exceeds this many pixels per side are dropped (grazing
        surfaces and points close to the camera plane would otherwise smear over the image).
    near_m: points closer than this to the target camera plane (or behind it) are dropped.
    edge_px: coverage ramps from 0 at a hole to 1 at this many pixels away from it.
    occlude_unseen: a frame's surfaces lying more than max_depth_ratio behind that frame's dropped discontinuity
        triangles (space the source never saw, e.g. a robot's far side) are left as holes instead of showing the
        background the unseen thing may hide. Off, the warp covers more at lower accuracy there.
    unseen_depth_ratio: how far behind a foreground edge that unseen thing is assumed to reach, relative to the edge's
        depth: only the part of a skirt within this of its nearest corner hides what lands behind it. A skirt spans
        the whole gap to the background, but a thin or rounded object ends long before it, so the rest of the gap
        stays open (Middlebury Motorcycle with the other defaults: coverage 0.862 unbounded, 0.872 at 0.1).
    depth_noise_inv_m: RMS error of one inverse-depth measurement (1/m) of the depth source; constant over depth for
        a stereo camera (`model.depth_sensor.expected_inverse_depth_error`), 0 for clean depth. A triangle whose
        corners differ by less than 3 sqrt(2) times this in inverse depth is noise on one surface, never a
        discontinuity, however far its parallax opens.
    """

    max_depth_ratio: float = 0.05
    max_parallax_px: float = 1.0
    max_triangle_px: int = 64
    near_m: float = 1e-3
    edge_px: int = 3
    occlude_unseen: bool = True
    unseen_depth_ratio: float = 0.1
    depth_noise_inv_m: float = 0.0


DEFAULT_SETTINGS = WarpSettings()


def intrinsics_vector(K: np.ndarray) -> np.ndarray:
    """(fx, fy, cx, cy) of a validated (3, 3) K."""
    if K[0, 1] != 0.0:
        raise GeometryError(
            f"intrinsics with skew (K[0, 1] = {K[0, 1]}) are not supported by the warp; rectify the images first"
        )
    return np.array([K[0, 0], K[1, 1], K[0, 2], K[1, 2]], dtype=np.float64)
