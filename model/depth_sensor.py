"""Depth as real cameras give it: a stereo active-IR sensor model (RealSense D4xx) and a monocular-estimate model.

Both turn clean depth (H, W) float32 metres (0 = invalid) into what a real depth source would deliver for the same
view, seeded and vectorised (numpy + OpenCV). They serve the data engine (sensor-like source depth next to the
clean depth), `embody4d eval --depth-model`, the demo's recorded bag, and the warp, which asks
`expected_inverse_depth_error` how far apart two neighbouring measurements may be on one smooth surface.

Stereo: the D4xx matches a left and a right infrared image (with a projected pattern) and reports depth for the
left imager, z = f * B / d. What goes wrong, in the order the model applies it:

1. disparity noise: Gaussian in disparity with RMS `subpixel_rms_px`, correlated over the matching window
   (`correlation_px`); constant in disparity, so the depth error grows as z^2 (Intel's RMS-error formula below);
2. subpixel quantisation: the ASIC reports disparity in steps of 1/32 px;
3. invalid bands along depth edges (the matching window straddles two surfaces, the left-right check fails);
4. shadows: background the left imager sees but the right one does not (beside the left of near objects);
5. flying pixels: just outside the bands, some pixels report a mix of the foreground and background depth;
6. dropouts: blobs of missing depth (low texture, specular spots, the projector's pattern missing);
7. colour/depth misregistration: the depth image, aligned to colour through a calibration, is off by a pixel or so.

Pixel sizes are in sensor pixels at the D4xx's native 848-wide depth stream and are scaled to the image at hand
(which keeps the image's field of view), so a 240x320 frame gets the noise of the real camera looking through the
same field of view, not of an 848-wide camera with a 320-pixel baseline.

Sources: Intel RealSense D400 Series datasheet (rev. 016+): baseline 50 mm (D435/D435i), 55 mm (D415); depth RMS
error <= 2 % at 2 m over 80 % of the field of view; depth field of view 87 deg x 58 deg (D435). Intel white paper
"Tuning depth cameras for best performance" (Grunnet-Jepsen et al.): RMS error = z^2 * subpixel / (f * B) with f
= 0.5 * width / tan(HFOV / 2), subpixel RMS about 0.08 px for a well-textured target, "invalid depth band" on the
left of near objects with width f * B * (1/z_near - 1/z_far); 5 fractional bits of disparity. Intel "Depth Post-
Processing for Intel RealSense D400 Depth Cameras": flying pixels and edge holes. The defaults are a D435 at
848x480, moderately textured scene.

Monocular: an estimator (Depth Anything, ZoeDepth, ...) gives smooth depth that is right up to an affine map of
inverse depth, 1/z_est = a / z + b (relative estimators are trained affine-invariant in disparity; metric ones are
off in scale by a few percent), with edges blurred over a few pixels and a low-frequency relative error; never
invalid. `model.depth_align` fits (a, b) back against metric anchors.

Camera presets (`STEREO_CAMERAS`, the names of the node's `depth.sensor` parameter): d435 (the defaults), d415
(55 mm baseline, 65 deg at its 1280-wide optimal depth stream) and d455 (95 mm baseline, 87 deg at 848 wide), from
the D400 datasheet; "stereo" in `DEPTH_MODELS` is the d435.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import cv2
import numpy as np

from model.geometry import DEFAULT_SETTINGS, WarpSettings

DEPTH_MODELS = ("clean", "stereo", "mono")


def _scale(width: int, native_width: int) -> float:
    """Image pixels per native sensor pixel."""
    return width / native_width


def _unit_correlated_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """Gaussian noise (H, W) with unit variance per pixel, correlated by a Gaussian of `sigma_px` pixels."""
    white = rng.standard_normal(shape).astype(np.float32)
    if sigma_px < 0.3:
        return white
    ksize = 2 * int(math.ceil(3 * sigma_px)) + 1
    kernel = cv2.getGaussianKernel(ksize, sigma_px).astype(np.float64)
    # the blurred noise's variance is the sum of the squared 2-D weights, (sum k_i^2)^2 for a separable kernel
    gain = 1.0 / float(np.sum(kernel**2))
    blurred = cv2.sepFilter2D(white, -1, kernel, kernel, borderType=cv2.BORDER_REFLECT)
    return blurred * np.float32(gain)


def _disk(radius_px: float) -> np.ndarray:
    r = max(0, int(round(radius_px)))
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    return (x * x + y * y <= r * r + 1e-9).astype(np.uint8)


def depth_edges(inverse_depth: np.ndarray, valid: np.ndarray, min_step: float) -> np.ndarray:
    """(H, W) bool: pixels with a 4-neighbour whose inverse depth differs by more than `min_step` (either side)."""
    edges = np.zeros(inverse_depth.shape, bool)
    for axis in (0, 1):
        step = np.abs(np.diff(inverse_depth, axis=axis)) > min_step
        both = valid[1:] & valid[:-1] if axis == 0 else valid[:, 1:] & valid[:, :-1]
        jump = step & both
        if axis == 0:
            edges[1:] |= jump
            edges[:-1] |= jump
        else:
            edges[:, 1:] |= jump
            edges[:, :-1] |= jump
    return edges


def stereo_shadow(disparity_px: np.ndarray, valid: np.ndarray, side: str = "left") -> np.ndarray:
    """(H, W) bool: pixels of the reference imager that the other imager cannot see (occluded by a nearer surface).

    A reference pixel u with disparity d is seen by the second imager at u - d (second imager to the right, side
    "left": the shadow falls on the left of near objects). It is hidden when some pixel further right lands at or
    left of it there: min over u' > u of (u' - d(u')) < u - d(u). Exact per row, vectorised as a suffix minimum.
    """
    height, width = disparity_px.shape
    d = np.where(valid, disparity_px, 0.0).astype(np.float64)
    if side == "right":
        return stereo_shadow(d[:, ::-1], valid[:, ::-1], "left")[:, ::-1]
    if side != "left":
        raise ValueError(f"shadow side must be 'left' or 'right', got {side!r}")
    landing = np.arange(width)[None, :] - d
    landing = np.where(valid, landing, np.inf)
    suffix = np.minimum.accumulate(landing[:, ::-1], axis=1)[:, ::-1]
    right_of = np.concatenate([suffix[:, 1:], np.full((height, 1), np.inf)], axis=1)
    return valid & (right_of < landing)


@dataclass(frozen=True)
class StereoSensor:
    """Active-IR stereo depth (RealSense D4xx). Defaults: D435 at its native 848-wide depth stream.

    baseline_m: 0.050 (D435/D435i), 0.055 (D415), datasheet.
    hfov_deg: the sensor's horizontal field of view at `native_width` (87 deg D435, 65 deg D415); only used by
        `rms_error_m` for the datasheet check; images keep their own field of view.
    native_width: width of the depth stream the matching runs at (848).
    subpixel_rms_px: RMS disparity error in native pixels (0.08 textured, up to ~0.2 low texture; white paper).
    correlation_px: the noise is correlated over the matching window: Gaussian sigma in native pixels.
    disparity_step_px: subpixel quantisation of the reported disparity (1/32 px, 5 fractional bits).
    edge_band_px: the invalid band along depth edges: the pixels on either side of the edge widened by this many
        native pixels (0 = no band).
    edge_min_disparity_px: a neighbour step of at least this disparity (native px) counts as a depth edge.
    shadow_side: "left" (D4xx: the right imager does not see the background left of a near object) or "none".
    flying_fraction: share of the pixels in the ring just outside an edge band reporting a foreground/background mix.
    dropout_fraction: expected share of valid pixels lost in dropout blobs.
    dropout_blob_px: size (Gaussian sigma, native pixels) of dropout blobs.
    misregistration_px: (dx, dy) shift of depth relative to colour in native pixels (calibration error).
    min_depth_m, max_depth_m: the working range; outside it the sensor reports nothing (D435 min-Z ~0.1 m at 848).
    """

    baseline_m: float = 0.050
    hfov_deg: float = 87.0
    native_width: int = 848
    subpixel_rms_px: float = 0.08
    correlation_px: float = 1.5
    disparity_step_px: float = 1.0 / 32.0
    edge_band_px: float = 1.0
    edge_min_disparity_px: float = 2.0
    shadow_side: str = "left"
    flying_fraction: float = 0.3
    dropout_fraction: float = 0.01
    dropout_blob_px: float = 2.0
    misregistration_px: tuple[float, float] = (1.0, 0.0)
    min_depth_m: float = 0.1
    max_depth_m: float = 10.0

    def native_focal_px(self, K: np.ndarray, width: int) -> float:
        """Focal length in native sensor pixels of a camera with the image's field of view."""
        return float(K[0, 0]) / _scale(width, self.native_width)

    def rms_error_m(self, depth_m: float) -> float:
        """Intel's RMS depth error of a flat textured target at `depth_m`, at the native field of view and width."""
        focal = 0.5 * self.native_width / math.tan(math.radians(self.hfov_deg) / 2)
        return depth_m**2 * self.subpixel_rms_px / (focal * self.baseline_m)

    def inverse_depth_sigma(self, K: np.ndarray, width: int) -> float:
        """RMS error of 1/z (1/m) for an image of this K and width: constant over depth (noise lives in disparity)."""
        return self.subpixel_rms_px / (self.native_focal_px(K, width) * self.baseline_m)

    def corrupt(self, depth: np.ndarray, K: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Sensor-like depth (H, W) float32 m (0 invalid) of clean depth (H, W) seen through intrinsics K (3, 3)."""
        depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float64)
        height, width = depth.shape
        s = _scale(width, self.native_width)
        focal_b = self.native_focal_px(K, width) * self.baseline_m  # native disparity = focal_b / z
        valid = (depth >= self.min_depth_m) & (depth <= self.max_depth_m)
        disparity = np.where(valid, focal_b / np.where(valid, depth, 1.0), 0.0)

        # 1-2: correlated disparity noise, quantised to the ASIC's subpixel step
        noise = _unit_correlated_noise(rng, depth.shape, self.correlation_px * s)
        measured = disparity + self.subpixel_rms_px * noise
        if self.disparity_step_px > 0:
            measured = np.round(measured / self.disparity_step_px) * self.disparity_step_px
        valid &= measured > 0

        # 3: invalid bands along depth edges, 5: flying pixels on the ring just outside them
        edges = depth_edges(disparity, valid, self.edge_min_disparity_px * 1.0)
        band = np.zeros_like(edges)
        if self.edge_band_px > 0 and edges.any():
            band = cv2.dilate(edges.astype(np.uint8), _disk(self.edge_band_px * s)).astype(bool)
        if self.flying_fraction > 0 and edges.any():
            ring = cv2.dilate(band.astype(np.uint8), _disk(1)).astype(bool) & ~band & valid
            flying = ring & (rng.random(depth.shape) < self.flying_fraction)
            near = cv2.dilate(np.where(valid, disparity, 0.0).astype(np.float32), _disk(2 + self.edge_band_px * s))
            far = -cv2.dilate(np.where(valid, -disparity, -np.inf).astype(np.float32), _disk(2 + self.edge_band_px * s))
            mix = rng.random(depth.shape)
            measured = np.where(flying, mix * near + (1 - mix) * np.where(np.isfinite(far), far, near), measured)
        invalid = band

        # 4: the second imager's shadow, computed in image pixels from the true disparity
        if self.shadow_side != "none":
            invalid = invalid | stereo_shadow(disparity * s, valid, self.shadow_side)

        # 6: dropout blobs: threshold a smooth unit Gaussian field at the quantile of the wanted rate
        if self.dropout_fraction > 0:
            field = _unit_correlated_noise(rng, depth.shape, self.dropout_blob_px * s)
            threshold = float(np.sqrt(2.0) * _erfinv(1.0 - 2.0 * self.dropout_fraction))
            invalid = invalid | (field > threshold)

        valid &= ~invalid
        out = np.where(valid, focal_b / np.where(valid, measured, 1.0), 0.0)
        # 7: misregistration: the depth image is shifted against colour (nearest whole image pixel)
        return shift_image(out, self.misregistration_px[0] * s, self.misregistration_px[1] * s).astype(np.float32)


@dataclass(frozen=True)
class MonoEstimate:
    """A monocular depth estimate: smooth, affine error in inverse depth, soft edges, never invalid.

    scale_rms: RMS of the per-clip relative scale error a - 1 of inverse depth (metric estimators: ~5 % AbsRel on
        indoor benchmarks, e.g. NYUv2).
    shift_rms_inv_m: RMS of the per-clip offset b of inverse depth (1/m; 0.02 /m is 2 cm at 1 m, 8 cm at 2 m).
    edge_softness_px: Gaussian sigma (image pixels at 640 wide; scaled with width) of the blur of inverse depth:
        estimators smooth depth edges over a few pixels.
    low_frequency_rms: RMS of a smooth relative error field (correlated over `low_frequency_px`, at 640 wide).
    """

    scale_rms: float = 0.05
    shift_rms_inv_m: float = 0.02
    edge_softness_px: float = 2.0
    low_frequency_rms: float = 0.02
    low_frequency_px: float = 40.0
    reference_width: int = 640

    def affine(self, rng: np.random.Generator) -> tuple[float, float]:
        """(a, b) of one clip: 1/z_est = a / z + b."""
        return 1.0 + self.scale_rms * float(rng.standard_normal()), self.shift_rms_inv_m * float(rng.standard_normal())

    def corrupt(
        self, depth: np.ndarray, K: np.ndarray, rng: np.random.Generator, affine: tuple[float, float] | None = None
    ) -> np.ndarray:
        """Estimated depth (H, W) float32 m of clean depth (H, W); `affine` fixes the clip's (a, b)."""
        del K  # the estimate does not depend on the optics, only on the picture
        depth = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)
        s = _scale(depth.shape[1], self.reference_width)
        valid = depth > 0
        # the estimator sees no holes: fill them with the farthest valid depth, as a wall behind
        filled = np.where(valid, depth, depth[valid].max() if valid.any() else 1.0)
        inverse = (1.0 / filled).astype(np.float32)
        sigma = self.edge_softness_px * s
        if sigma >= 0.3:
            inverse = cv2.GaussianBlur(inverse, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
        relative = 1.0 + self.low_frequency_rms * _unit_correlated_noise(rng, depth.shape, self.low_frequency_px * s)
        a, b = affine if affine is not None else self.affine(rng)
        # a far surface with a negative offset would get inverse depth <= 0: keep it at most 1 km away
        return (1.0 / np.maximum(a * inverse * relative + b, 1e-3)).astype(np.float32)


def shift_image(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """image shifted by (dx, dy) rounded to whole pixels; uncovered pixels become 0 (no measurement)."""
    ix, iy = int(round(dx)), int(round(dy))
    if ix == 0 and iy == 0:
        return image
    out = np.zeros_like(image)
    h, w = image.shape[:2]
    target = (slice(max(iy, 0), h + min(iy, 0)), slice(max(ix, 0), w + min(ix, 0)))
    out[target] = image[max(-iy, 0) : h - max(iy, 0), max(-ix, 0) : w - max(ix, 0)]
    return out


def _erfinv(y: float) -> float:
    """Inverse error function (scalar) by Newton steps on math.erf; enough for a threshold."""
    x = 0.0
    for _ in range(60):
        x -= (math.erf(x) - y) / (2.0 / math.sqrt(math.pi) * math.exp(-x * x))
    return x


STEREO_CAMERAS: dict[str, StereoSensor] = {
    "d435": StereoSensor(),
    "d415": StereoSensor(baseline_m=0.055, hfov_deg=65.0, native_width=1280),
    "d455": StereoSensor(baseline_m=0.095),
}
# what produced a depth image: the names `expected_inverse_depth_error` (and the node's depth.sensor) accept
DEPTH_SOURCES = ("clean", *STEREO_CAMERAS, "mono")


def sensor_depth(depth: np.ndarray, K: np.ndarray, model: str, seed: int) -> np.ndarray:
    """Depth (T, H, W) or (H, W) as the named depth model would deliver it ('clean' returns the input).

    Per clip one random stream (seed), so frames get independent noise, and a mono estimate one affine error.
    """
    if model == "clean":
        return depth
    rng = np.random.default_rng(seed)
    frames = depth[None] if depth.ndim == 2 else depth
    if model == "stereo":
        sensor = STEREO_CAMERAS["d435"]
        out = np.stack([sensor.corrupt(d, K, rng) for d in frames])
    elif model == "mono":
        estimate = MonoEstimate()
        affine = estimate.affine(rng)
        out = np.stack([estimate.corrupt(d, K, rng, affine) for d in frames])
    else:
        raise ValueError(f"depth model must be one of {DEPTH_MODELS}, got {model!r}")
    return out[0] if depth.ndim == 2 else out


def expected_inverse_depth_error(model: str, K: np.ndarray, width: int) -> float:
    """RMS error of neighbouring inverse-depth measurements (1/m) on one smooth surface, for the warp's
    discontinuity test: constant in 1/z for a stereo camera (`model` "stereo" or a name of `STEREO_CAMERAS`); 0 for
    clean depth and for a mono estimate (smooth locally)."""
    if model in ("clean", "mono"):
        return 0.0
    camera = STEREO_CAMERAS.get("d435" if model == "stereo" else model)
    if camera is None:
        raise ValueError(f"depth model must be one of {sorted({*DEPTH_MODELS, *DEPTH_SOURCES})}, got {model!r}")
    return camera.inverse_depth_sigma(K, width)


def warp_settings(model: str, K: np.ndarray, width: int, base: WarpSettings = DEFAULT_SETTINGS) -> WarpSettings:
    """`base` told how noisy the depth source `model` is (`expected_inverse_depth_error`): what a user sets for their
    camera with the node's `depth.sensor`."""
    return dataclasses.replace(base, depth_noise_inv_m=expected_inverse_depth_error(model, K, width))
