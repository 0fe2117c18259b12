"""Joint states at a frame's stamp: interpolation, joints published apart, stale and missing joints."""

import pytest

from embody4d_ros.joint_states import JointStateBuffer

MS = 1_000_000


def test_interpolates_between_messages_and_merges_joint_subsets():
    buffer = JointStateBuffer(slop_ns=20 * MS)
    buffer.add(100 * MS, ["j1", "j2"], [0.0, 1.0])
    buffer.add(200 * MS, ["j1", "j2"], [1.0, 3.0])
    buffer.add(140 * MS, ["gripper"], [0.04])  # published by another node at another time, 15 ms from the frame
    result = buffer.lookup(125 * MS, ["j1", "j2", "gripper"])
    assert result.ok
    assert result.positions["j1"] == pytest.approx(0.25)
    assert result.positions["j2"] == pytest.approx(1.5)
    assert result.positions["gripper"] == pytest.approx(0.04)


def test_stale_and_missing_joints_are_reported():
    buffer = JointStateBuffer(slop_ns=20 * MS)
    buffer.add(100 * MS, ["j1", "j2"], [0.0, 1.0])
    fresh = buffer.lookup(115 * MS, ["j1"])
    assert fresh.ok and fresh.positions["j1"] == 0.0
    late = buffer.lookup(130 * MS, ["j1", "j2", "j3"])
    assert not late.ok
    assert late.stale == ["j1", "j2"] and late.missing == ["j3"]
    assert "stale joint state for j1, j2" in late.reason() and "no joint state for j3" in late.reason()
    assert "0.030 s older than the frame" in late.reason()
    assert "0.050 s newer than the frame" in buffer.lookup(50 * MS, ["j1"]).reason()  # another clock


def test_out_of_order_messages_and_publisher_gaps():
    buffer = JointStateBuffer(slop_ns=10 * MS, max_gap_ns=500 * MS)
    buffer.add(300 * MS, ["j"], [3.0])
    buffer.add(100 * MS, ["j"], [1.0])  # late arrival, inserted in order
    assert buffer.lookup(200 * MS, ["j"]).positions["j"] == pytest.approx(2.0)
    buffer.add(2000 * MS, ["j"], [5.0])  # 1.7 s silence: not interpolated across
    assert buffer.lookup(1000 * MS, ["j"]).stale == ["j"]
    assert buffer.lookup(1995 * MS, ["j"]).positions["j"] == 5.0


def test_history_spans_a_time_window_whatever_the_rate():
    # a 1 kHz publisher and a 49-frame clip at 30 Hz: the first frame's state is 1.6 s back
    buffer = JointStateBuffer(slop_ns=10 * MS, window_ns=2000 * MS)
    for k in range(3001):
        buffer.add(k * MS, ["j"], [k / 1000])
    assert buffer.lookup(1400 * MS, ["j"]).positions["j"] == pytest.approx(1.4)
    assert buffer.lookup(900 * MS, ["j"]).stale == ["j"]  # 2.1 s before the newest: dropped
    buffer.add(500 * MS, ["j"], [9.0])  # a late sample older than the window is not kept
    assert buffer.lookup(500 * MS, ["j"]).stale == ["j"]
