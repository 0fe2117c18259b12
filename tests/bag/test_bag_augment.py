"""`embody4d augment-bag`: inputs preserved byte for byte, virtual topics right, atomic output, RGB-only bags."""

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader, Writer

from embody4d_ros.augment_bag import PARTIAL_LOCK, augment_bag
from embody4d_ros.bag_io import REALSENSE, CameraTopics, read_rgbd_frames, typestore, write_rgbd_bag
from embody4d_ros.cli import main as cli_main
from embody4d_ros.conversions import make_transform, rosbags_types
from embody4d_ros.params import resolve
from model.engines.base import Engine

ROOT = Path(__file__).resolve().parents[2]
T, H, W = 5, 24, 32
K = np.array([[28.0, 0.0, 15.5], [0.0, 28.0, 11.5], [0.0, 0.0, 1.0]])
VIRTUAL = CameraTopics(
    color="/virtual_camera/color/image_raw",
    camera_info="/virtual_camera/color/camera_info",
    depth="/virtual_camera/none",
    frame_id="virtual_camera_color_optical_frame",
)


class WarpOnly(Engine):
    """Test stand-in: returns the geometric warp as is."""

    name = "warp_only"

    def generate(self, request):
        return request.warped_rgb


def warp_only(params):
    return WarpOnly()


@pytest.fixture
def clip():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8)
    depth = np.full((T, H, W), 1.25, np.float32)
    stamps = [1_700_000_000_000_000_000 + i * 100_000_000 for i in range(T)]
    return rgb, depth, stamps


def all_messages(path):
    with Reader(path) as reader:
        connections = {c.topic: c for c in reader.connections}
        messages = [(c.topic, c.msgtype, t, bytes(raw)) for c, t, raw in reader.messages()]
    return connections, messages


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_inputs_preserved_and_identity_view_returns_input(tmp_path, clip, storage):
    rgb, depth, stamps = clip
    source = write_rgbd_bag(tmp_path / "in", rgb, depth, K, stamps, storage=storage)
    cameras = resolve(None, ["target.mode=pose"])  # identity pose
    summary = augment_bag(source, tmp_path / "out", cameras, engine_factory=warp_only, progress=False)
    assert summary["cameras"] == {"virtual_camera": T}

    in_conns, in_msgs = all_messages(source)
    out_conns, out_msgs = all_messages(tmp_path / "out")
    copied = [m for m in out_msgs if m[0] in in_conns]
    assert sorted(copied) == sorted(in_msgs)  # topic, type, receive time and bytes
    for topic, conn in in_conns.items():
        out = out_conns[topic]
        assert (out.msgtype, out.msgdef, out.digest) == (conn.msgtype, conn.msgdef, conn.digest)
        assert out.ext == conn.ext  # serialisation format and offered QoS profiles

    frames = list(read_rgbd_frames(tmp_path / "out", VIRTUAL, require_depth=False))
    assert [f.stamp_ns for f in frames] == stamps
    for i, frame in enumerate(frames):
        assert frame.frame_id == "virtual_camera_color_optical_frame"
        np.testing.assert_array_equal(frame.rgb, rgb[i])
        np.testing.assert_allclose(frame.K, K)


def test_output_size_scales_intrinsics_and_tf_static(tmp_path, clip):
    rgb, depth, stamps = clip
    source = write_rgbd_bag(tmp_path / "in", rgb, depth, K, stamps)
    pose = [0.1, -0.05, 0.02, 0.0, 0.0871557, 0.0, 0.9961947]
    cameras = resolve(
        None,
        [
            "target.mode=pose",
            f"target.pose=[{','.join(map(str, pose))}]",
            "output_width=16",
            "output_height=12",
            "openpi_224=true",
        ],
    )
    augment_bag(source, tmp_path / "out", cameras, engine_factory=warp_only, progress=False)
    store = typestore()
    with Reader(tmp_path / "out") as reader:
        msgs = {}
        for conn, _, raw in reader.messages():
            msgs.setdefault(conn.topic, []).append(store.deserialize_cdr(raw, conn.msgtype))
    info = msgs["/virtual_camera/color/camera_info"][0]
    assert (info.width, info.height) == (16, 12)
    np.testing.assert_allclose(np.asarray(info.k).reshape(3, 3)[:2, :2], K[:2, :2] / 2)
    assert [(m.width, m.height) for m in msgs["/virtual_camera/color/image_raw"]] == [(16, 12)] * T
    assert [(m.width, m.height, m.encoding) for m in msgs["/virtual_camera/openpi/image_raw"]] == [
        (224, 224, "rgb8")
    ] * T
    (tf,) = msgs["/tf_static"]
    (transform,) = tf.transforms
    assert transform.header.frame_id == REALSENSE.frame_id
    assert transform.child_frame_id == "virtual_camera_color_optical_frame"
    t, q = transform.transform.translation, transform.transform.rotation
    np.testing.assert_allclose([t.x, t.y, t.z, q.x, q.y, q.z, q.w], pose, atol=1e-6)


def test_existing_tf_static_is_kept_and_extended(tmp_path, clip):
    rgb, depth, stamps = clip
    source = write_rgbd_bag(tmp_path / "in", rgb, depth, K, stamps)
    store = typestore()
    with_tf = tmp_path / "with_tf"
    with Reader(source) as reader, Writer(with_tf, version=8) as writer:
        conns = {
            c.id: writer.add_connection(
                c.topic,
                c.msgtype,
                msgdef=c.msgdef.data,
                rihs01=c.digest,
                offered_qos_profiles=c.ext.offered_qos_profiles,
            )
            for c in reader.connections
        }
        tf = writer.add_connection("/tf_static", "tf2_msgs/msg/TFMessage", typestore=store)
        robot = make_transform(rosbags_types(store), [0, 0, 1, 0, 0, 0, 1], stamps[0], "base_link", "camera_link")
        writer.write(
            tf,
            stamps[0] - 1,
            store.serialize_cdr(store.types["tf2_msgs/msg/TFMessage"](transforms=[robot]), "tf2_msgs/msg/TFMessage"),
        )
        for conn, t, raw in reader.messages():
            writer.write(conns[conn.id], t, raw)
    augment_bag(with_tf, tmp_path / "out", resolve(None), engine_factory=warp_only, progress=False)
    connections, messages = all_messages(tmp_path / "out")
    assert sum(c.topic == "/tf_static" for c in connections.values()) == 1
    children = [
        store.deserialize_cdr(raw, "tf2_msgs/msg/TFMessage").transforms[0].child_frame_id
        for topic, _, _, raw in messages
        if topic == "/tf_static"
    ]
    assert children == ["camera_link", "virtual_camera_color_optical_frame"]


def test_several_virtual_cameras(tmp_path, clip):
    rgb, depth, stamps = clip
    source = write_rgbd_bag(tmp_path / "in", rgb, depth, K, stamps, storage="mcap")
    params = tmp_path / "cams.yaml"
    params.write_text(
        "left:\n  ros__parameters:\n    output_namespace: /left\n"
        "    virtual_frame_id: left_optical\n    target: {yaw_deg: -10.0}\n"
        "right:\n  ros__parameters:\n    output_namespace: /right\n"
        "    virtual_frame_id: right_optical\n    target: {yaw_deg: 10.0}\n"
    )
    summary = augment_bag(source, tmp_path / "out", resolve(params), engine_factory=warp_only, progress=False)
    assert summary["cameras"] == {"left": T, "right": T}
    connections, _ = all_messages(tmp_path / "out")
    for name in ("left", "right"):
        assert connections[f"/{name}/color/image_raw"].msgcount == T
        assert connections[f"/{name}/color/camera_info"].msgcount == T
    assert connections["/tf_static"].msgcount == 2


def test_refuses_to_overwrite_and_reports_bad_input(tmp_path, clip, capsys):
    rgb, depth, stamps = clip
    source = write_rgbd_bag(tmp_path / "in", rgb, depth, K, stamps)
    (tmp_path / "out").mkdir()
    assert cli_main(["augment-bag", str(source), str(tmp_path / "out")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli_main(["augment-bag", str(source), str(tmp_path / "o2"), "--param", "target.yaw_deg=abc"]) == 2
    assert "target.yaw_deg" in capsys.readouterr().err and not (tmp_path / "o2").exists()


def test_rgb_only_bag_needs_an_estimator(tmp_path, clip, capsys):
    rgb, _, stamps = clip
    source = write_rgbd_bag(tmp_path / "in", rgb, None, K, stamps)
    assert cli_main(["augment-bag", str(source), str(tmp_path / "out")]) == 2
    assert "depth.source=depth_anything_v2" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial-*"))


def test_rgb_only_bag_with_depth_anything(tmp_path, clip):
    transformers = pytest.importorskip("transformers")
    backbone = transformers.Dinov2Config(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        patch_size=14,
        image_size=28,
        out_features=["stage1", "stage2"],
        reshape_hidden_states=False,
    )
    config = transformers.DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=16,
        neck_hidden_sizes=[8, 16],
        reassemble_factors=[1, 1],
        fusion_hidden_size=8,
        head_hidden_size=4,
        depth_estimation_type="metric",
        max_depth=5,
    )
    model_dir = tmp_path / "dav2"
    transformers.DepthAnythingForDepthEstimation(config).save_pretrained(model_dir)
    transformers.DPTImageProcessorPil(
        size={"height": 28, "width": 28}, keep_aspect_ratio=False, ensure_multiple_of=14, do_pad=False
    ).save_pretrained(model_dir)
    rgb, _, stamps = clip
    source = write_rgbd_bag(tmp_path / "in", rgb, None, K, stamps)
    cameras = resolve(None, ["depth.source=depth_anything_v2", f"depth.model_path={model_dir}", "target.pivot_m=1.0"])
    summary = augment_bag(source, tmp_path / "out", cameras, engine_factory=warp_only, progress=False)
    assert summary["cameras"] == {"virtual_camera": T}


SLOW_RUN = textwrap.dedent("""
    import sys, time
    from model.engines.base import Engine, register_engine
    from embody4d_ros.cli import main

    class SlowEngine(Engine):
        def generate(self, request):
            time.sleep(0.3)
            return request.warped_rgb

    register_engine("warp", "__main__:SlowEngine")
    sys.exit(main(["augment-bag", sys.argv[1], sys.argv[2], "--param", "target.mode=pose"]))
""")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_leaves_no_output(tmp_path, sig):
    rng = np.random.default_rng(0)
    frames = 40
    source = write_rgbd_bag(
        tmp_path / "in",
        rng.integers(0, 256, (frames, H, W, 3), dtype=np.uint8),
        np.full((frames, H, W), 1.0, np.float32),
        K,
        [10**9 + i * 10**8 for i in range(frames)],
    )
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_RUN, str(source), str(out)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".out.partial-*/out/*")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    time.sleep(1.0)  # mid-run: some frames generated, far from done
    assert proc.poll() is None
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    assert not out.exists(), (proc.returncode, stderr.decode()[-3000:])
    leftovers = list(tmp_path.glob(".out.partial-*"))
    if sig == signal.SIGTERM:
        assert proc.returncode == 130 and not leftovers
    # the next run writing into the same directory (any OUTPUT) removes what the killed one left, and completes
    other = tmp_path / "other"
    augment_bag(source, other, resolve(None, ["target.mode=pose"]), engine_factory=warp_only, progress=False)
    assert other.exists() and not list(tmp_path.glob(".*.partial-*"))
    assert len(list(read_rgbd_frames(other, VIRTUAL, require_depth=False))) == frames


def test_partial_output_of_a_live_run_is_left_alone(tmp_path, clip):
    rgb, depth, stamps = clip
    source = write_rgbd_bag(tmp_path / "in", rgb, depth, K, stamps)
    live = tmp_path / ".busy.partial-12345"
    live.mkdir()
    with (live / PARTIAL_LOCK).open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running augment-bag holds
        augment_bag(source, tmp_path / "out", resolve(None), engine_factory=warp_only, progress=False)
        assert live.exists()
    augment_bag(source, tmp_path / "out2", resolve(None), engine_factory=warp_only, progress=False)
    assert not live.exists()  # its lock is free now: a dead run's leftovers
