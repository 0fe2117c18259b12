"""The ROS-free runtime: sync, scheduling, drop policy, counters, and bad input that never stops it."""

import threading
import time
import tracemalloc

import numpy as np
import pytest

from embody4d_ros.conversions import depth_to_image, make_camera_info, numpy_to_image, rgb_to_image, rosbags_types
from embody4d_ros.live import diagnostic_status
from embody4d_ros.params import resolve
from embody4d_ros.runtime import RuntimeStats, SequenceGaps, SyncBuffer, ThrottledLog, VirtualCameraRuntime
from model.depth import DepthEstimator
from model.engines.base import Engine

TYPES = rosbags_types()
H, W = 24, 32
K = np.array([[30.0, 0.0, 15.5], [0.0, 30.0, 11.5], [0.0, 0.0, 1.0]])
RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
DEPTH = np.full((H, W), 1.5, np.float32)
MS = 1_000_000
T0 = 1_700_000_000_000_000_000


def color(stamp, rgb=RGB):
    return rgb_to_image(TYPES, rgb, stamp, "camera_color_optical_frame")


def depth(stamp, metres=DEPTH):
    return depth_to_image(TYPES, metres, stamp, "camera_color_optical_frame")


def info(k=K, width=W, height=H):
    return make_camera_info(TYPES, k, width, height, 0, "camera_color_optical_frame")


class Counting(Engine):
    """Test stand-in: the warp as is, counting calls (optionally slow or failing)."""

    def __init__(self, delay_s=0.0, fail_first=0):
        self.calls, self.delay_s, self.fail_first = 0, delay_s, fail_first

    def generate(self, request):
        self.calls += 1
        time.sleep(self.delay_s)
        if self.calls <= self.fail_first:
            raise RuntimeError("simulated engine failure")
        return request.warped_rgb


def make_runtime(*overrides, engine=None, **kwargs):
    out, logs = [], []
    runtime = VirtualCameraRuntime(
        resolve(None, overrides)["virtual_camera"], publish=out.append, engine=engine, log=logs.append, **kwargs
    )
    return runtime, out, logs


def feed(runtime, stamp, rgb=RGB, metres=DEPTH):
    runtime.on_color(color(stamp, rgb))
    runtime.on_depth(depth(stamp, metres))


# ------------------------------------------------------------------------------------------------------ sync


def test_sync_pairs_within_slop_and_drops_unmatched():
    sync = SyncBuffer(slop_ns=10 * MS, queue_size=5)
    assert sync.add_color(100 * MS, "c1") == []
    (pair,) = sync.add_depth(105 * MS, "d1")
    assert (pair[0].payload, pair[1].payload) == ("c1", "d1")
    sync.add_color(200 * MS, "c2")  # its depth never comes
    sync.add_color(300 * MS, "c3")
    (pair,) = sync.add_depth(298 * MS, "d3")
    assert pair[0].payload == "c3" and sync.drops == {"color_unmatched": 1}


def test_sync_rejects_out_of_order_and_stays_bounded():
    sync = SyncBuffer(slop_ns=1 * MS, queue_size=3)
    sync.add_color(50 * MS, "a")
    sync.add_color(50 * MS, "repeat")
    sync.add_color(40 * MS, "older")
    assert sync.drops["color_out_of_order"] == 2
    for i in range(10):
        sync.add_color((60 + i) * MS, i)
    assert len(sync.color) == 3 and sync.drops["color_queue_full"] == 8
    sync.add_depth(69 * MS, "d")
    sync.add_color(69 * MS, "again")
    assert sync.drops["color_stale_stamp"] == 1


def test_sequence_gaps_count_what_each_publisher_skipped():
    gaps = SequenceGaps()
    seen = [("a", 4), ("a", 5), ("b", 1), ("a", 9), ("b", 2), ("a", 9), ("b", None), ("b", 6)]
    # a's first message says nothing (a late subscriber misses earlier ones), 6-8 skipped, a repeat skips nothing;
    # b numbers its own messages, without a number nothing is known
    assert [gaps.missed(publisher, sequence) for publisher, sequence in seen] == [0, 0, 0, 3, 0, 0, 0, 3]


def test_throttled_log():
    now = [0.0]
    lines = []
    log = ThrottledLog(lines.append, period_s=5.0, clock=lambda: now[0])
    assert log.warn("x", "bad") and not log.warn("x", "bad") and log.warn("y", "other")
    now[0] = 6.0
    log.warn("x", "bad")
    assert lines == ["bad", "other", "bad (1 more since the last report)"]


# ------------------------------------------------------------------------------------------------- generation


def test_identity_view_returns_input_with_source_stamp():
    poses = []
    runtime, out, _ = make_runtime("target.mode=pose", on_pose=poses.append)  # the real warp engine
    runtime.on_camera_info(info())
    feed(runtime, T0)
    assert runtime.drain() == 1
    (frame,) = out
    np.testing.assert_array_equal(frame.rgb, RGB)
    assert frame.stamp_ns == T0 and frame.frame_id == "virtual_camera_color_optical_frame"
    assert frame.source_frame_id == "camera_color_optical_frame"
    np.testing.assert_allclose(frame.K, K)
    (pose,) = poses
    np.testing.assert_allclose(pose, [0, 0, 0, 0, 0, 0, 1], atol=1e-9)


def test_orbit_viewpoint_is_fixed_by_the_first_frame():
    poses = []
    runtime, out, _ = make_runtime("target.yaw_deg=10", "output_width=16", "output_height=12", on_pose=poses.append)
    runtime.on_camera_info(info())
    for i in range(3):
        feed(runtime, T0 + i * 33 * MS, metres=DEPTH * (1 + i))  # the scene moves; the camera must not
        runtime.drain()
    assert len(out) == 3 and len(poses) == 1
    assert out[0].rgb.shape == (12, 16, 3)
    x = poses[0][0]
    assert x == pytest.approx(1.5 * np.sin(np.radians(10)), rel=1e-6)  # pivot = first frame's centre depth


@pytest.mark.parametrize("threads", [1, 3])
def test_the_warp_runs_on_warp_threads(monkeypatch, threads):
    import embody4d_ros.runtime as runtime_module

    asked = []
    prepare = runtime_module.prepare_virtual_view
    monkeypatch.setattr(
        runtime_module, "prepare_virtual_view", lambda *a, **k: asked.append(k["threads"]) or prepare(*a, **k)
    )
    runtime, out, _ = make_runtime("target.yaw_deg=10", f"warp_threads={threads}")
    runtime.on_camera_info(info())
    feed(runtime, T0)
    assert runtime.drain() == 1 and asked == [threads]
    assert runtime.robot_layer is not None and runtime.robot_layer.config.warp_threads == threads  # its scene warp


def test_clip_mode_overlapping_windows_publish_each_frame_once_in_order():
    engine = Counting()
    runtime, out, _ = make_runtime("mode=clip", "clip_length=5", "clip_overlap=2", "target.mode=pose", engine=engine)
    runtime.on_camera_info(info())
    stamps = [T0 + i * 100 * MS for i in range(12)]
    for stamp in stamps:
        feed(runtime, stamp)
        runtime.drain()
    assert engine.calls == 3  # windows end at frames 5, 8 and 11
    runtime.flush()
    runtime.drain()
    assert engine.calls == 4 and [f.stamp_ns for f in out] == stamps


def test_frames_wait_for_the_engine_up_to_queue_size_then_the_oldest_go():
    runtime, out, _ = make_runtime("target.mode=pose", "queue_size=3", engine=Counting())
    runtime.on_camera_info(info())
    for i in range(5):
        feed(runtime, T0 + i * 10 * MS)
    assert runtime.drain() == 3
    assert [f.stamp_ns for f in out] == [T0 + i * 10 * MS for i in (2, 3, 4)]
    assert runtime.stats.summary()["drops"]["engine_busy"] == 2


def test_a_burst_is_absorbed_while_the_worker_generates():
    """Input that comes faster than the engine for a while (reliable DDS delivering late fragments together) waits
    in the queue and goes out in order, none dropped; the time frames waited is reported."""

    class Gated(Counting):
        """Holds the first generation until the whole burst is in, then takes 20 ms per frame."""

        def __init__(self):
            super().__init__(delay_s=0.02)
            self.burst_in = threading.Event()

        def generate(self, request):
            self.burst_in.wait(10)
            return super().generate(request)

    engine = Gated()
    runtime, out, _ = make_runtime("target.mode=pose", engine=engine)
    runtime.on_camera_info(info())
    runtime.start()
    try:
        for i in range(8):
            feed(runtime, T0 + i * 33 * MS)
        engine.burst_in.set()
        deadline = time.monotonic() + 10
        while len(out) < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        runtime.stop()
    summary = runtime.stats.summary()
    assert [f.stamp_ns for f in out] == [T0 + i * 33 * MS for i in range(8)]
    assert "engine_busy" not in summary["drops"] and engine.calls == 8
    # the time frames waited is reported (for the warp, then for the engine); the last frame, received before the
    # burst was let through, went out after the eight generations (20 ms each) that followed
    assert summary["latency_ms"]["queue_wait"]["n"] == summary["latency_ms"]["handoff_wait"]["n"] == 8
    assert summary["latency_ms"]["added"]["max"] >= 8 * 20


def test_rgb_only_with_an_estimator():
    class Flat(DepthEstimator):
        def estimate(self, rgb):
            return np.full(rgb.shape[:3], 2.0, np.float32)

    runtime, out, _ = make_runtime(
        "target.yaw_deg=5", "depth.source=depth_anything_v2", engine=Counting(), depth_estimator=Flat()
    )
    runtime.on_camera_info(info())
    runtime.on_color(color(T0))
    runtime.drain()
    assert len(out) == 1 and "depth" in runtime.stats.summary()["latency_ms"]


def test_input_is_counted_per_topic_on_arrival():
    runtime, out, _ = make_runtime("target.mode=pose", engine=Counting())
    runtime.on_camera_info(info(k=np.zeros((3, 3))))  # counted although unusable
    runtime.on_color(color(T0))  # counted although it never finds its depth
    runtime.on_color(color(T0 + 100 * MS))
    runtime.on_depth(depth(T0 + 50 * MS))  # counted although it pairs with no colour
    runtime.on_lost("depth", 3)
    runtime.drain()
    summary = runtime.stats.summary()
    assert out == [] and summary["counts"] == {"camera_info_in": 1, "color_in": 2, "depth_in": 1}
    assert summary["drops"]["depth_lost"] == 3 and summary["drops"]["color_unmatched"] == 1


def test_receive_latency_is_the_colour_stamp_to_its_arrival():
    arrivals = iter([T0 + 7 * MS, T0 + 45 * MS, T0 + 80 * MS])
    runtime, _, _ = make_runtime("target.mode=pose", engine=Counting(), now_ns=lambda: next(arrivals))
    runtime.on_color(color(T0))  # 7 ms after its stamp
    runtime.on_color(color(T0 + 33 * MS))  # 12 ms
    runtime.on_depth(depth(T0))  # depth is not the frame's stamp: not a receive sample
    receive = runtime.stats.summary()["latency_ms"]["receive"]
    assert receive["n"] == 2 and receive["max"] == pytest.approx(12.0)


def test_frames_before_the_first_camera_info_wait_for_it():
    runtime, out, _ = make_runtime(
        "target.mode=pose", "queue_size=3", "mode=clip", "clip_length=3", "clip_overlap=0", engine=Counting()
    )
    for i in range(5):
        feed(runtime, T0 + i * 50 * MS)  # camera_info comes late (another topic): the last queue_size frames wait
    runtime.on_camera_info(info())
    runtime.drain()
    assert [f.stamp_ns for f in out] == [T0 + i * 50 * MS for i in (2, 3, 4)]
    assert runtime.stats.summary()["drops"] == {"no_camera_info": 2}


def test_clip_fill_says_how_far_the_next_clip_is():
    runtime, out, _ = make_runtime(
        "mode=clip", "clip_length=5", "clip_overlap=2", "target.mode=pose", engine=Counting()
    )
    assert make_runtime("target.mode=pose", engine=Counting())[0].clip_fill() is None
    runtime.on_camera_info(info())
    fills = []
    for i in range(8):
        fills.append(runtime.clip_fill())
        feed(runtime, T0 + i * 50 * MS)
        runtime.drain()
    assert fills == [(0, 5), (1, 5), (2, 5), (3, 5), (4, 5), (0, 3), (1, 3), (2, 3)]
    assert runtime.clip_fill() == (0, 3) and len(out) == 8


# ----------------------------------------------------------------------------------------------- bad input


def test_bad_input_is_counted_warned_and_serving_continues():
    engine = Counting(fail_first=1)
    runtime, out, logs = make_runtime("target.yaw_deg=5", engine=engine)
    stamp = iter(range(T0, T0 + 10**12, 50 * MS))
    runtime.on_camera_info(info(k=np.zeros((3, 3))))  # uncalibrated
    runtime.on_camera_info(info())
    s = next(stamp)
    runtime.on_color(numpy_to_image(TYPES, RGB[..., 0].astype(np.uint16), "16UC1", s, "cam"))  # depth on colour
    runtime.on_depth(depth(s))
    feed(runtime, next(stamp), metres=np.ones((H // 2, W // 2), np.float32))  # colour and depth sizes differ
    feed(runtime, next(stamp), metres=np.zeros((H, W), np.float32))  # all-zero depth
    feed(runtime, next(stamp), metres=np.full((H, W), np.nan, np.float32))  # all-NaN depth
    s = next(stamp)
    runtime.on_camera_info(info(width=W * 2, height=H * 2))  # camera_info for another size
    feed(runtime, s)
    runtime.on_camera_info(info())
    for _ in range(2):
        feed(runtime, next(stamp))  # first one: the engine fails
        runtime.drain()
    last = next(stamp)
    feed(runtime, last)
    feed(runtime, last)  # repeated stamp
    feed(runtime, last - 20 * MS)  # out of order
    runtime.drain()
    drops = runtime.stats.summary()["drops"]
    for reason in ("bad_camera_info", "bad_encoding", "size_mismatch", "no_valid_depth", "engine_error"):
        assert drops.get(reason, 0) >= 1, (reason, drops)
    assert drops["size_mismatch"] == 2 and drops["no_valid_depth"] == 2
    assert drops.get("color_stale_stamp", 0) + drops.get("color_out_of_order", 0) >= 2  # sync drops reach the counters
    assert [f.stamp_ns for f in out][-1] == last and len(out) == 2  # still serving
    assert any("no_valid_depth" in line for line in logs)
    assert sum("no_valid_depth" in line for line in logs) == 1  # throttled


def test_burst_at_120hz_keeps_memory_bounded():
    runtime, _, _ = make_runtime("target.mode=pose", "queue_size=10", engine=Counting(delay_s=0.005))
    runtime.publish = lambda frame: None  # keep nothing: only the runtime's own memory is measured
    runtime.on_camera_info(info())
    period = 1_000_000_000 // 120

    def burst(start, count):
        for i in range(start, start + count):
            feed(runtime, T0 + i * period)

    runtime.start()
    try:
        burst(0, 200)  # warm-up: let every buffer reach its steady size, and the warp compile (numba) or load
        deadline = time.monotonic() + 120
        while not runtime.stats.summary()["counts"].get("frames_out") and time.monotonic() < deadline:
            time.sleep(0.01)
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        burst(200, 1000)
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
    finally:
        runtime.stop()
    growth = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    # 1000 frames are ~7 MB of pixels; a bounded runtime holds a few frames
    assert growth < 1_000_000, growth
    assert len(runtime.sync.color) <= 10 and len(runtime.sync.depth) <= 10
    counts, drops = runtime.stats.summary()["counts"], runtime.stats.summary()["drops"]
    assert counts["frames_in"] == 1200 and 0 < counts["frames_out"] < 1200
    # every frame is accounted for: published, dropped for a busy engine, or still waiting when the runtime stopped
    assert counts["frames_out"] + drops["engine_busy"] + drops.get("shutdown", 0) == 1200


def test_worker_thread_publishes_from_another_thread():
    runtime, out, _ = make_runtime("target.mode=pose", engine=Counting())
    runtime.on_camera_info(info())
    threads = []
    runtime.publish = lambda frame: threads.append(threading.current_thread().name)
    runtime.start()
    try:
        feed(runtime, T0)
        deadline = time.monotonic() + 10
        while not threads and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        runtime.stop()
    assert threads == ["virtual_camera_fill"]


# ----------------------------------------------------------------------------------- two-stage image pipeline


class Estimated(DepthEstimator):
    """Flat depth; runs in the prepare stage, so it records which thread prepared each frame and when."""

    def __init__(self):
        self.threads = []
        self.prepared = threading.Semaphore(0)

    def estimate(self, rgb):
        self.threads.append(threading.current_thread().name)
        self.prepared.release()
        return np.full(rgb.shape[:3], 2.0, np.float32)


class Blocking(Counting):
    """Holds the first generation until `release` is set; says whether that happened before `timeout_s`."""

    def __init__(self, timeout_s=10.0):
        super().__init__()
        self.entered, self.release, self.timeout_s = threading.Event(), threading.Event(), timeout_s
        self.released_in_time = None

    def generate(self, request):
        if self.calls == 0:
            self.entered.set()
            self.released_in_time = self.release.wait(self.timeout_s)
        return super().generate(request)


def pipelined_runtime(*overrides, engine):
    estimator = Estimated()
    runtime, out, _ = make_runtime(
        "target.mode=pose", "depth.source=depth_anything_v2", *overrides, engine=engine, depth_estimator=estimator
    )
    runtime.on_camera_info(info())
    return runtime, out, estimator


def wait_for(condition, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert condition()


def test_image_mode_prepares_the_next_frame_while_the_engine_fills_this_one():
    engine = Blocking(timeout_s=5.0)
    runtime, out, estimator = pipelined_runtime(engine=engine)
    images = [RNG.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(6)]
    runtime.start()
    try:
        runtime.on_color(color(T0, images[0]))
        assert engine.entered.wait(10)
        runtime.on_color(color(T0 + 33 * MS, images[1]))
        # one stage: frame 1 waits for frame 0's fill, which waits for frame 1's preparation (5 s, then fails)
        assert estimator.prepared.acquire(timeout=10) and estimator.prepared.acquire(timeout=10)
        engine.release.set()
        for i in range(2, 6):
            runtime.on_color(color(T0 + i * 33 * MS, images[i]))
        wait_for(lambda: len(out) == 6)
    finally:
        runtime.stop()
    assert engine.released_in_time
    assert [f.stamp_ns for f in out] == [T0 + i * 33 * MS for i in range(6)]
    for frame, image in zip(out, images):  # each published image is its own frame's view (identity pose)
        np.testing.assert_array_equal(frame.rgb, image)
    assert set(estimator.threads) == {"virtual_camera_prepare"}
    summary = runtime.stats.summary()
    assert summary["drops"] == {} and summary["counts"]["frames_out"] == 6
    for stage in ("queue_wait", "depth", "warp", "handoff_wait", "engine", "publish"):
        assert summary["latency_ms"][stage]["n"] == 6, stage


def test_a_full_hand_off_holds_the_warp_and_frames_drop_counted_before_it():
    engine = Blocking()
    runtime, out, estimator = pipelined_runtime("queue_size=2", engine=engine)
    stamps = [T0 + i * 33 * MS for i in range(7)]
    runtime.start()
    try:
        runtime.on_color(color(stamps[0]))
        assert engine.entered.wait(10)  # the fill stage holds frame 0
        runtime.on_color(color(stamps[1]))  # prepared, waits in the hand-off
        runtime.on_color(color(stamps[2]))  # prepared, waits for room in the hand-off
        wait_for(lambda: runtime.stats.summary()["counts"].get("fill_stage_busy") == 1)
        for stamp in stamps[3:]:  # queue_size=2: frames 3 and 4 make room for 5 and 6
            runtime.on_color(color(stamp))
        assert runtime.stats.summary()["drops"] == {"engine_busy": 2}
        engine.release.set()
        wait_for(lambda: len(out) == 5)
    finally:
        runtime.stop()
    assert [f.stamp_ns for f in out] == [stamps[i] for i in (0, 1, 2, 5, 6)]
    assert len(estimator.threads) == 5  # no warped frame was thrown away
    summary = runtime.stats.summary()
    assert summary["drops"] == {"engine_busy": 2}
    assert summary["counts"]["frames_in"] == summary["counts"]["frames_out"] + summary["drops"]["engine_busy"]


def test_stop_joins_both_stages_and_counts_the_frames_left():
    engine = Blocking()
    runtime, out, _ = pipelined_runtime("queue_size=2", engine=engine)
    stamps = [T0 + i * 33 * MS for i in range(4)]
    runtime.start()
    runtime.on_color(color(stamps[0]))
    assert engine.entered.wait(10)
    runtime.on_color(color(stamps[1]))
    runtime.on_color(color(stamps[2]))
    wait_for(lambda: runtime.stats.summary()["counts"].get("fill_stage_busy") == 1)
    runtime.on_color(color(stamps[3]))  # waits for the prepare stage
    threading.Timer(0.2, engine.release.set).start()  # stop() waits for the frame the fill stage is on
    runtime.stop()
    assert [t.name for t in threading.enumerate() if t.name.startswith("virtual_camera")] == []
    assert [f.stamp_ns for f in out] == stamps[:1]
    # frame 1 in the hand-off, frame 2 prepared, frame 3 in the engine queue: none lost silently
    assert runtime.stats.summary()["drops"] == {"shutdown": 3}


def test_clip_mode_runs_one_worker_thread():
    runtime, out, _ = make_runtime(
        "mode=clip", "clip_length=3", "clip_overlap=0", "target.mode=pose", engine=Counting()
    )
    runtime.on_camera_info(info())
    threads = []
    runtime.publish = lambda frame: threads.append(threading.current_thread().name)
    runtime.start()
    try:
        for clip in range(2):  # one clip at a time: a waiting clip would be replaced by the next window
            for i in range(3 * clip, 3 * clip + 3):
                feed(runtime, T0 + i * 50 * MS)
            wait_for(lambda: len(threads) == 3 * clip + 3)
    finally:
        runtime.stop()
    assert set(threads) == {"virtual_camera_worker"}


# ---------------------------------------------------------------------------------------------- diagnostics


def test_robot_layer_skips_raise_diagnostics_to_warn():
    runtime, out, _ = make_runtime("target.mode=pose", "robot.enable=true", engine=Counting())
    runtime.on_camera_info(info())
    healthy = runtime.stats.summary()
    for i in range(2):  # asked for the robot layer, but no robot description arrives
        feed(runtime, T0 + i * 50 * MS)
        runtime.drain()
    skipped = runtime.stats.summary()
    level, message, values = diagnostic_status(skipped, healthy, 1.0, "warp", "warp")
    assert len(out) == 2 and level == "WARN"
    assert "robot layer skipped no_robot_model 2" in message and values["robot layer no_robot_model"] == "2"
    feed(runtime, T0 + 200 * MS)
    runtime.drain()
    level, message, _ = diagnostic_status(runtime.stats.summary(), skipped, 1.0, "warp", "warp")
    assert level == "WARN" and "no_robot_model 1" in message  # still skipping
    runtime.stats.count("robot_drawn")  # the layer draws again: the next report is OK
    level, _, _ = diagnostic_status(runtime.stats.summary(), runtime.stats.summary(), 1.0, "warp", "warp")
    assert level == "OK"


def test_stats_summary_percentiles_of_the_last_window():
    """p50 / p99 by linear interpolation between order statistics (numpy's default), over the last `window`."""
    stats = RuntimeStats(window=101)
    for ms in range(300, 0, -1):  # 300 ... 1: the window keeps the last 101, i.e. 101 ... 1
        stats.record("warp", float(ms))
    summary = stats.summary()["latency_ms"]["warp"]
    # sorted 1..101: the 50th percentile sits at index 50 (value 51), the 99th at index 99 (value 100)
    assert summary == {"p50": 51.0, "p99": 100.0, "max": 101.0, "n": 101}
