"""The compiled kernels of the per-frame path (depth repair and warp) release the GIL, so a node can run them in a
worker thread while the interpreter deserialises the next frame. Checked by behaviour, not by flags: with the
interpreter's switch interval raised far beyond the test, the main thread gets the GIL back from a worker only when
the worker releases it, which a kernel compiled without nogil never does while it runs."""

import sys
import threading
import time

import numba
import numpy as np
import pytest

from model.geometry import WarpSettings, repair_depth, warp_numba
from model.geometry import depth_repair_numba as repair_kernels
from model.geometry.base import intrinsics_vector


def main_thread_ran_during(kernel, *args) -> bool:
    """True if the main thread executed Python code while a worker thread called `kernel(*args)` over and over for
    0.3 s (long enough for the busy OS to schedule the main thread while a call runs)."""
    started = threading.Event()

    def work():
        started.set()  # the worker keeps the GIL from here on unless the kernel releases it
        end = time.perf_counter() + 0.3
        while time.perf_counter() < end:
            kernel(*args)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(60.0)
    try:
        worker = threading.Thread(target=work)
        worker.start()
        started.wait()
        steps = 0
        while worker.is_alive() and steps < 1000:
            steps += 1
        worker.join()
    finally:
        sys.setswitchinterval(interval)
    return steps == 1000


@numba.njit(cache=True)
def holds_the_gil(values):  # pragma: no cover - compiled
    total = 0.0
    for _ in range(20):
        for v in values:
            total += v
    return total


def test_the_check_sees_a_kernel_that_holds_the_gil():
    values = np.ones(200_000)
    holds_the_gil(values)
    assert not main_thread_ran_during(holds_the_gil, values)
    assert main_thread_ran_during(numba.njit(nogil=True)(holds_the_gil.py_func), values)


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(0)
    height, width = 480, 640
    depth = np.full((height, width), 2.0, np.float32)
    depth[100:380, 200:450] = 1.0
    depth[rng.random((height, width)) < 0.05] = 0.0
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    K = np.array([[500.0, 0, 319.5], [0, 500.0, 239.5], [0, 0, 1]])
    return image, depth, K


def test_depth_repair_kernels_release_the_gil(frame):
    image, depth, _ = frame
    repair_depth(depth, image)  # compiled or loaded from the cache before timing starts
    guessed, pixels, cost, runs = repair_kernels.work_arrays(*depth.shape)
    out = np.empty_like(depth)
    count = repair_kernels.mark_flying(depth, 0.05, True, out, guessed, pixels)
    reliability = np.empty_like(depth)
    assert main_thread_ran_during(repair_kernels.mark_flying, depth, 0.05, True, out, guessed, pixels)
    assert main_thread_ran_during(repair_kernels.fill_runs, out, guessed, pixels, count, image, True, 32, cost, runs)
    assert main_thread_ran_during(repair_kernels.write_reliability, out, pixels, count, 0.05, 2, reliability)


def test_warp_kernels_release_the_gil(frame):
    image, depth, K = frame
    T = np.eye(4)
    T[0, 3] = 0.05
    repaired, reliability = repair_depth(depth, image)
    settings = WarpSettings()
    warp_numba.render_frames(
        image[None], repaired[None], reliability[None], K, K, T[None], 480, 640, np.arange(1), settings
    )
    k = intrinsics_vector(K)
    (band,) = warp_numba._band_arrays(1, 640, 480, 640)
    colour = np.zeros_like(image)
    coverage = np.zeros(depth.shape, np.float32)
    pose_and_thresholds = (k, k, np.eye(3), T[:3, 3].copy(), 0.05, 1.0, 0.0, 64, 1e-3)
    rows = (0, 479)
    skirts = (repaired, *pose_and_thresholds, True, 1.1, band.column, band.skirt_rows, band.skirt, band.span, *rows)
    assert main_thread_ran_during(warp_numba._raster_skirts, *skirts)
    splat = (image, repaired, reliability, *pose_and_thresholds, band.inverse_depth, colour, coverage)
    work = (band.rows, band.column, band.skirt, band.span, 0.5, *rows, True)
    assert main_thread_ran_during(warp_numba._splat_frame, *splat, *work)
    inverse_depth = band.inverse_depth
    other = warp_numba._BandArrays(640, 480, 640)
    assert main_thread_ran_during(warp_numba._merge_skirts, band.skirt, band.span, other.skirt, other.span)
    other.inverse_depth.fill(0.0)
    merge = (inverse_depth, colour, coverage, other.inverse_depth, other.colour_of(colour.dtype), other.conf)
    assert main_thread_ran_during(warp_numba._merge_band, *merge)
    assert main_thread_ran_during(
        warp_numba._finish_target, inverse_depth, coverage, np.empty_like(coverage), 3, 0, 480
    )
