"""rosbag2 writing and reading in the realsense-ros layout, sqlite3 and MCAP, without ROS."""

import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import Reader

from embody4d_ros.bag_io import REALSENSE, BagError, read_rgbd_frames, typestore, write_rgbd_bag

T, H, W = 4, 24, 32
K = np.array([[30.0, 0.0, 15.5], [0.0, 31.0, 11.5], [0.0, 0.0, 1.0]])


@pytest.fixture
def clip():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8)
    depth = rng.uniform(0.2, 4.0, (T, H, W)).astype(np.float32)
    depth[:, 0, 0] = 0.0  # invalid pixels stay 0
    depth[:, 0, 1] = np.nan
    stamps = [1_700_000_000_000_000_000 + i * 33_333_333 for i in range(T)]
    return rgb, depth, stamps


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_round_trip_frames(tmp_path, clip, storage):
    rgb, depth, stamps = clip
    path = write_rgbd_bag(tmp_path / "bag", rgb, depth, K, stamps, storage=storage)
    metadata = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert metadata["storage_identifier"] == storage
    frames = list(read_rgbd_frames(path))
    assert [f.stamp_ns for f in frames] == stamps
    for i, frame in enumerate(frames):
        np.testing.assert_array_equal(frame.rgb, rgb[i])
        expected = np.nan_to_num(depth[i], nan=0.0)
        assert np.abs(frame.depth - expected).max() <= 0.0005 + 1e-6  # millimetre quantisation
        assert frame.depth[0, 0] == 0 and frame.depth[0, 1] == 0
        np.testing.assert_allclose(frame.K, K)
        assert frame.frame_id == REALSENSE.frame_id


def test_messages_match_realsense_layout(tmp_path, clip):
    rgb, depth, stamps = clip
    path = write_rgbd_bag(tmp_path / "bag", rgb, depth, K, stamps)
    store = typestore()
    with Reader(path) as reader:
        topics = {c.topic: c.msgtype for c in reader.connections}
        assert topics == {
            REALSENSE.color: "sensor_msgs/msg/Image",
            REALSENSE.depth: "sensor_msgs/msg/Image",
            REALSENSE.camera_info: "sensor_msgs/msg/CameraInfo",
        }
        seen = {}
        for conn, timestamp, raw in reader.messages():
            msg = store.deserialize_cdr(raw, conn.msgtype)
            assert msg.header.frame_id == "camera_color_optical_frame"
            assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == timestamp
            seen[conn.topic] = msg
    color, depth_msg, info = seen[REALSENSE.color], seen[REALSENSE.depth], seen[REALSENSE.camera_info]
    assert (color.encoding, color.step, color.height, color.width) == ("rgb8", W * 3, H, W)
    assert (depth_msg.encoding, depth_msg.step) == ("16UC1", W * 2)
    assert info.distortion_model == "plumb_bob" and not np.any(info.d) and len(info.d) == 5
    np.testing.assert_allclose(np.asarray(info.p).reshape(3, 4)[:, :3], K)
    assert (info.width, info.height) == (W, H)


def test_rgb_only_bag_needs_depth_estimator(tmp_path, clip):
    rgb, _, stamps = clip
    path = write_rgbd_bag(tmp_path / "bag", rgb, None, K, stamps, storage="mcap")
    with pytest.raises(BagError, match="depth estimator"):
        list(read_rgbd_frames(path))
    frames = list(read_rgbd_frames(path, require_depth=False))
    assert len(frames) == T and all(f.depth is None for f in frames)


def test_refuses_to_overwrite(tmp_path, clip):
    rgb, depth, stamps = clip
    (tmp_path / "bag").mkdir()
    with pytest.raises(BagError, match="already exists"):
        write_rgbd_bag(tmp_path / "bag", rgb, depth, K, stamps)


def test_rejects_bad_shapes(tmp_path, clip):
    rgb, depth, stamps = clip
    with pytest.raises(BagError, match="depth_m"):
        write_rgbd_bag(tmp_path / "a", rgb, depth[:, :-1], K, stamps)
    with pytest.raises(BagError, match="one stamp per frame"):
        write_rgbd_bag(tmp_path / "b", rgb, depth, K, stamps[:-1])
