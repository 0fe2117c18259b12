"""The robot's appearance where the source camera never saw it: an albedo per material part times an irradiance that
is a second-order spherical harmonic of the surface normal, both fitted on the pixels the source did see.

Why this form: the robot's shading under fixed distant lights is its albedo times the irradiance reaching a surface
of that normal, and for a diffuse surface that irradiance is, to within a few percent, a polynomial of degree 2 in
the normal's components, whatever the lights (Ramamoorthi & Hanrahan 2001, "An efficient representation for
irradiance environment maps"). The irradiance is one per image (the lights are the same for every part), the albedo
one per part (with links and the whole robot as fallbacks for parts the source did not see). Normals are in the
source camera's frame, where the lighting stays fixed while the virtual camera moves. The fit sees only the normals
that face the source; a ridge on the second-order terms keeps its extrapolation to the others sane.
"""

from __future__ import annotations

import dataclasses

import numba
import numpy as np

# the nine polynomial terms of the second-order spherical harmonics (constant factors dropped: they scale the
# coefficients only): 1, x, y, z, xy, yz, xz, x^2 - y^2, 3z^2 - 1
NUM_TERMS = 9
# ridge on the second-order terms, per seen pixel: the seen normals cover half of the sphere, where the quadratic
# terms trade off against the linear ones; a light pull towards zero keeps the extrapolation to the other half sane
# (chosen on a dev split: docs/EVALUATION.md, "The robot's far side")
_RIDGE_PER_PIXEL = 0.02
# rounds of alternating least squares (converged: 16 and 32 fit the same to 0.01 dB on that split)
_ALTERNATIONS = 8
# octahedral bins per side for the normals in `harmonic_moments`
_NORMAL_BINS = 16


@numba.njit(cache=True, nogil=True, inline="always")
def _terms(nx, ny, nz, out):  # pragma: no cover - compiled
    out[0] = 1.0
    out[1], out[2], out[3] = nx, ny, nz
    out[4], out[5], out[6] = nx * ny, ny * nz, nx * nz
    out[7] = nx * nx - ny * ny
    out[8] = 3.0 * nz * nz - 1.0


@numba.njit(cache=True, nogil=True, error_model="numpy")
def harmonic_moments(seen, colour, normal, part, v_lo, v_hi, u_lo, u_hi, gram, rhs):  # pragma: no cover - compiled
    """Per material part, sums over its seen pixels (all in rows v_lo..v_hi-1, columns u_lo..u_hi-1): gram (P, 9, 9)
    of terms x terms (upper triangle), rhs (P, 9, 3) of terms x colour.

    The pixels are first summed per part and normal direction (`_NORMAL_BINS` octahedral bins: count, normal and
    colour sums, 7 additions a pixel instead of 72 products); each bin then adds its pixels' terms at their mean
    normal. Within a bin (16 a side: about 11 degrees across) the quadratic terms barely change: the sums agree with
    the pixels' own to under 1 % of their largest possible value."""
    num_parts = gram.shape[0]
    bins = np.zeros((num_parts, _NORMAL_BINS * _NORMAL_BINS, 7))
    half = _NORMAL_BINS / 2.0
    for v in range(v_lo, v_hi):
        for u in range(u_lo, u_hi):
            if not seen[v, u]:
                continue
            nx, ny, nz = normal[v, u, 0], normal[v, u, 1], normal[v, u, 2]
            # octahedral map of the unit sphere onto the square [-1, 1]^2
            norm = abs(nx) + abs(ny) + abs(nz) + 1e-12
            x, y = nx / norm, ny / norm
            if nz < 0:
                x, y = (1.0 - abs(y)) * (1.0 if x >= 0 else -1.0), (1.0 - abs(x)) * (1.0 if y >= 0 else -1.0)
            i = min(int((x + 1.0) * half), _NORMAL_BINS - 1)
            j = min(int((y + 1.0) * half), _NORMAL_BINS - 1)
            cell = bins[part[v, u], i * _NORMAL_BINS + j]
            cell[0] += 1.0
            cell[1] += nx
            cell[2] += ny
            cell[3] += nz
            cell[4] += colour[v, u, 0]
            cell[5] += colour[v, u, 1]
            cell[6] += colour[v, u, 2]
    terms = np.empty(NUM_TERMS)
    for p in range(num_parts):
        for c in range(bins.shape[1]):
            cell = bins[p, c]
            count = cell[0]
            if count == 0:
                continue
            _terms(cell[1] / count, cell[2] / count, cell[3] / count, terms)
            for a in range(NUM_TERMS):
                for b in range(a, NUM_TERMS):
                    gram[p, a, b] += count * terms[a] * terms[b]
                for k in range(3):
                    rhs[p, a, k] += terms[a] * cell[4 + k]


@dataclasses.dataclass(frozen=True)
class Appearance:
    """albedo (3, G, 3): per fallback level (part, link, whole robot) and group, the colour under unit irradiance;
    observed (3, G) bool: the group had seen pixels. irradiance (9, 3): coefficients of the terms, per channel."""

    albedo: np.ndarray
    observed: np.ndarray
    irradiance: np.ndarray


def fit_appearance(gram: np.ndarray, rhs: np.ndarray, part_link: np.ndarray) -> Appearance:
    """Albedo per part and irradiance per channel from the per-part moments (`harmonic_moments`, upper triangle) by
    alternating least squares: with the albedos fixed the irradiance is linear, and with the irradiance fixed each
    albedo is."""
    gram = np.triu(gram) + np.triu(gram, 1).transpose(0, 2, 1)
    count = gram[:, 0, 0]
    num_parts, num_links = len(count), int(part_link.max()) + 1
    seen_parts = np.flatnonzero(count > 0)
    seen_gram, seen_rhs = gram[seen_parts], rhs[seen_parts]
    ridge = np.full(NUM_TERMS, _RIDGE_PER_PIXEL * count.sum())
    ridge[:4] = 1e-6 * count.sum()  # a token one on the constant and linear terms: solvable when the normals are few
    albedo = seen_rhs[:, 0, :] / count[seen_parts, None]  # mean colour per part
    irradiance = _alternate(seen_gram, seen_rhs, ridge, albedo, _ALTERNATIONS)
    link_of_part = np.zeros((num_links, num_parts))
    link_of_part[part_link, np.arange(num_parts)] = 1.0
    link_gram = (link_of_part @ gram.reshape(num_parts, -1)).reshape(num_links, NUM_TERMS, NUM_TERMS)
    link_rhs = (link_of_part @ rhs.reshape(num_parts, -1)).reshape(num_links, NUM_TERMS, 3)
    out = np.zeros((3, max(num_parts, num_links), 3))
    observed = np.zeros(out.shape[:2], bool)
    out[0, seen_parts], observed[0, seen_parts] = albedo, True
    out[1, :num_links], observed[1, :num_links] = _albedo(link_gram, link_rhs, irradiance), link_gram[:, 0, 0] > 0
    out[2, :1], observed[2, 0] = _albedo(gram.sum(0, keepdims=True), rhs.sum(0, keepdims=True), irradiance), True
    return Appearance(out, observed, irradiance)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _alternate(gram, rhs, ridge, albedo, iterations):  # pragma: no cover - compiled
    """The alternating least squares of `fit_appearance` from the parts' mean colours ``albedo`` (P, 3), which it
    updates in place; returns the irradiance (9, 3). Compiled: a few dozen tiny solves, which numpy's per-call
    overhead would make cost a millisecond."""
    num_parts = gram.shape[0]
    irradiance = np.zeros((NUM_TERMS, 3))
    lhs = np.empty((NUM_TERMS, NUM_TERMS))
    b = np.empty(NUM_TERMS)
    for _ in range(iterations):
        for k in range(3):
            lhs[:] = 0.0
            b[:] = 0.0
            mean_weight = 0.0
            for p in range(num_parts):
                weight = albedo[p, k] * albedo[p, k]
                mean_weight += weight / num_parts
                for a in range(NUM_TERMS):  # written out: an array expression here allocates per part
                    for c in range(NUM_TERMS):
                        lhs[a, c] += weight * gram[p, a, c]
                    b[a] += albedo[p, k] * rhs[p, a, k]
            if mean_weight < 1e-6:  # black in this channel everywhere (a pure red robot): any irradiance fits
                irradiance[:, k] = 0.0
                irradiance[0, k] = 1.0
                continue
            for a in range(NUM_TERMS):
                lhs[a, a] += ridge[a] * mean_weight
            irradiance[:, k] = np.linalg.solve(lhs, b)
        # the product is what is fitted: keep the scale on the albedo
        irradiance /= max((irradiance[0, 0] + irradiance[0, 1] + irradiance[0, 2]) / 3.0, 1e-6)
        for p in range(num_parts):
            for k in range(3):
                numerator, denominator = 0.0, 0.0
                for a in range(NUM_TERMS):
                    numerator += rhs[p, a, k] * irradiance[a, k]
                    for c in range(NUM_TERMS):
                        denominator += irradiance[a, k] * gram[p, a, c] * irradiance[c, k]
                albedo[p, k] = numerator / max(denominator, 1e-9)
    return irradiance


class AppearanceCache:
    """The fitted `Appearance` kept between the frames of a fixed camera (`model.robot.compose.compose_robot_view`).

    The lights and the robot's materials do not change from frame to frame, so the fit (the moments and the
    alternating least squares: about a millisecond per 480x640 frame on a 2-core CPU) is redone only every
    ``refit_every`` frames (1: every frame); a moved camera (the lights move in its frame) is caught up by the next
    refit. Why 2: each frame's fit sees other normals, so a kept fit drifts from the one the frame would get; on the
    held-out robots (480x640, 13-frame clips, docs/EVALUATION.md) every 2nd frame moves the robot-region PSNR by
    -0.11 to +0.11 dB, every 5th by up to -0.46 dB (kinova3), every 10th by up to -0.40 dB (xarm6). Refitting also
    when a material part the kept fit never saw comes into view changed none of these numbers at 2.
    """

    def __init__(self, refit_every: int = 2) -> None:
        if refit_every < 1:
            raise ValueError(f"refit_every must be at least 1, got {refit_every}")
        self.refit_every = refit_every
        self.fits = 0  # how many appearances were stored (for the benchmarks and tests)
        self._appearance: Appearance | None = None
        self._num_parts = 0  # the material parts of the robot it was fitted on
        self._age = 0  # frames since the kept appearance was fitted, that frame included

    def lookup(self, num_parts: int) -> Appearance | None:
        """The kept appearance for this frame of a robot of ``num_parts`` material parts, or None when it is time to
        fit (then `store` the fit)."""
        kept = self._appearance
        if kept is None or self._age >= self.refit_every or self._num_parts != num_parts:
            return None
        self._age += 1
        return kept

    def latest(self, num_parts: int) -> Appearance | None:
        """The last appearance stored for a robot of ``num_parts`` material parts, however old (None: none yet): a
        frame that sees too little of the robot to fit uses it rather than the model's own colours."""
        return self._appearance if self._num_parts == num_parts else None

    def store(self, appearance: Appearance, num_parts: int) -> None:
        """Keep ``appearance``, fitted this frame on a robot of ``num_parts`` material parts."""
        self._appearance, self._num_parts, self._age = appearance, num_parts, 1
        self.fits += 1


def _albedo(gram: np.ndarray, rhs: np.ndarray, irradiance: np.ndarray) -> np.ndarray:
    """(G, 3) least-squares albedo per group and channel under ``irradiance`` (9, 3)."""
    numerator = (rhs * irradiance).sum(1)
    denominator = ((gram @ irradiance) * irradiance).sum(1)
    return numerator / np.maximum(denominator, 1e-9)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def shade_unseen(
    mask, seen, normal, part, part_link, albedo, observed, irradiance, v_lo, v_hi, u_lo, u_hi, colour
):  # pragma: no cover - compiled
    """Write ``colour`` on the robot pixels of ``mask`` not ``seen`` (all in rows v_lo..v_hi-1, columns
    u_lo..u_hi-1): the albedo of the first fallback level (part, link, whole robot) that observed the pixel's group,
    times the irradiance at its normal (never negative)."""
    y = np.empty(NUM_TERMS)
    for v in range(v_lo, v_hi):
        for u in range(u_lo, u_hi):
            if not mask[v, u] or seen[v, u]:
                continue
            p = part[v, u]
            level, g = 2, 0
            if observed[0, p]:
                level, g = 0, p
            elif observed[1, part_link[p]]:
                level, g = 1, part_link[p]
            _terms(normal[v, u, 0], normal[v, u, 1], normal[v, u, 2], y)
            for k in range(3):
                e = 0.0
                for a in range(NUM_TERMS):
                    e += y[a] * irradiance[a, k]
                colour[v, u, k] = albedo[level, g, k] * max(e, 0.0)
