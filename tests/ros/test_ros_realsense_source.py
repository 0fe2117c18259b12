"""RealSense input through pyrealsense2 without hardware: a software device records a .db3, the source plays it back
through librealsense's pipeline (alignment to colour, filters) and the ROS-free runtime makes virtual frames of it."""

import numpy as np
import pytest

from embody4d_ros.params import resolve
from embody4d_ros.realsense import RealSenseConfig, RealSenseSource, feed_runtime
from embody4d_ros.runtime import VirtualCameraRuntime
from model.engines.warp import WarpEngine

rs = pytest.importorskip("pyrealsense2", reason="pyrealsense2 (and Debian's libusb-1.0-0) not installed")

COLOUR_HW, DEPTH_HW = (48, 64), (24, 32)
FOCAL_COLOUR = 60.0
FRAMES = 4


def _intrinsics(height, width, focal):
    intrinsics = rs.intrinsics()
    intrinsics.width, intrinsics.height = width, height
    intrinsics.ppx, intrinsics.ppy = (width - 1) / 2, (height - 1) / 2
    intrinsics.fx = intrinsics.fy = focal
    intrinsics.model, intrinsics.coeffs = rs.distortion.none, [0.0] * 5
    return intrinsics


def _stream(kind, fmt, bpp, uid, intrinsics):
    stream = rs.video_stream()
    stream.type, stream.index, stream.uid, stream.fps, stream.bpp, stream.fmt = kind, 0, uid, 30, bpp, fmt
    stream.width, stream.height, stream.intrinsics = intrinsics.width, intrinsics.height, intrinsics
    return stream


def scene(k):
    """(depth mm (24, 32) uint16 with a hole, colour (48, 64, 3) uint8) of frame k: a wall at 1.5 m + k cm."""
    depth = np.full(DEPTH_HW, 1500 + 10 * k, np.uint16)
    depth[10:12, 15:17] = 0  # a small hole for the hole-filling filter
    colour = np.random.default_rng(k).integers(0, 256, (*COLOUR_HW, 3), dtype=np.uint8)
    return depth, colour


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A .db3 recorded from a software device: depth at half the colour resolution (same field of view)."""
    path = str(tmp_path_factory.mktemp("realsense") / "camera.db3")
    device = rs.software_device()
    depth_sensor, colour_sensor = device.add_sensor("Depth"), device.add_sensor("Color")
    depth_sensor.add_read_only_option(rs.option.depth_units, 0.001)
    depth_profile = depth_sensor.add_video_stream(
        _stream(rs.stream.depth, rs.format.z16, 2, 0, _intrinsics(*DEPTH_HW, FOCAL_COLOUR / 2))
    )
    colour_profile = colour_sensor.add_video_stream(
        _stream(rs.stream.color, rs.format.rgb8, 3, 1, _intrinsics(*COLOUR_HW, FOCAL_COLOUR))
    )
    identity = rs.extrinsics()
    identity.rotation, identity.translation = [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0], [0.0, 0.0, 0.0]
    depth_profile.register_extrinsics_to(colour_profile, identity)
    recorder = rs.recorder(path, device)
    depth_sensor.open(depth_profile)
    colour_sensor.open(colour_profile)
    syncer = rs.syncer()
    depth_sensor.start(syncer)
    colour_sensor.start(syncer)
    buffers = []  # librealsense reads the pixels later: keep them alive
    for k in range(FRAMES):
        depth, colour = scene(k)
        buffers += [depth, colour]
        streams = ((depth_sensor, depth_profile, depth, 2), (colour_sensor, colour_profile, colour, 3))
        for sensor, profile, pixels, bpp in streams:
            frame = rs.software_video_frame()
            frame.pixels, frame.bpp, frame.stride = pixels, bpp, pixels.shape[1] * bpp
            frame.timestamp, frame.frame_number = 1000.0 + k * 100.0, k  # milliseconds
            frame.domain, frame.profile = rs.timestamp_domain.hardware_clock, profile.as_video_stream_profile()
            sensor.on_video_frame(frame)
    for sensor in (depth_sensor, colour_sensor):
        sensor.stop()
        sensor.close()
    recorder.pause()
    del recorder, device
    return path


def test_recording_plays_back_aligned_to_colour_in_metres(recording):
    with RealSenseSource(RealSenseConfig(source=recording)) as source:
        frames = list(source)
    # librealsense's syncer pairs a colour image with a stale depth image now and then during playback, more often
    # on a busy CPU (1 of 4 frames came through once while another job rendered beside the suite); such a pair is
    # refused (more than half a frame apart): frames may be missing, never wrong
    assert len(frames) >= 1
    for frame in frames:
        k = round((frame.stamp_ns / 1e6 - 1000.0) / 100.0)
        depth_mm, colour = scene(k)
        np.testing.assert_array_equal(frame.rgb, colour)
        assert frame.depth.shape == COLOUR_HW and frame.depth.dtype == np.float32  # aligned: the colour's grid
        valid = frame.depth[frame.depth > 0]
        assert valid.size > 0.9 * frame.depth.size
        np.testing.assert_allclose(valid, depth_mm.max() / 1000.0, atol=1e-4)
        np.testing.assert_allclose(frame.K, [[FOCAL_COLOUR, 0, 31.5], [0, FOCAL_COLOUR, 23.5], [0, 0, 1]])
        assert frame.stamp_ns == int((1000.0 + k * 100.0) * 1e6)
    assert sorted(f.stamp_ns for f in frames) == [f.stamp_ns for f in frames]
    # the hole (2x2 depth pixels) survives alignment as invalid depth, about 4x4 colour pixels
    assert all(4 <= (frame.depth == 0).sum() <= 36 for frame in frames)


def test_hole_filling_filter_fills_the_hole(recording):
    with RealSenseSource(RealSenseConfig(source=recording, hole_filling=True, spatial=True)) as source:
        frames = list(source)
    assert len(frames) >= 1  # see above
    assert all((frame.depth > 0).all() for frame in frames)


def test_software_device_stream_runs_through_the_runtime(recording):
    published = []
    params = resolve(None, ["target.yaw_deg=5.0", "target.pivot_m=1.5"])["virtual_camera"]
    runtime = VirtualCameraRuntime(params, publish=published.append, engine=WarpEngine(), log=lambda m: None)
    submitted = feed_runtime(runtime, RealSenseConfig(source=recording))
    runtime.drain()
    assert 1 <= submitted <= FRAMES  # see above
    assert 1 <= len(published) <= submitted  # image mode: the oldest are dropped when generation lags
    last = published[-1]
    assert last.rgb.shape == (*COLOUR_HW, 3) and last.rgb.dtype == np.uint8
    assert last.stamp_ns in [int((1000.0 + k * 100.0) * 1e6) for k in range(FRAMES)]
    assert last.rgb.std() > 20  # the random texture came through the warp, not a blank frame


def test_command_line_text_picks_source_and_filters():
    from embody4d_ros.realsense import RealSenseError, config_from_text

    config = config_from_text("camera", "spatial, hole_filling")
    assert config.source == "" and config.spatial and config.hole_filling and not config.temporal
    assert config_from_text("run.db3").is_recording and not config_from_text("123456789012").is_recording
    with pytest.raises(RealSenseError, match="decimation"):
        config_from_text("camera", "decimation")
