"""`embody4d eval` with the robot layer: the silhouette IoU on masks with a known answer, the robot rows and the table
per robot on a synthesised held-out sample, and a clear refusal when the data has no robot state."""

import json
import math

import numpy as np
import pytest

from offline_training.evaluate import EvalConfig, evaluate
from offline_training.metrics import silhouette_iou


def rectangle(top: int, left: int, height: int = 10, width: int = 20, shape=(40, 60)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[top : top + height, left : left + width] = True
    return mask


@pytest.mark.parametrize("k", [0, 1, 3, 7])
def test_iou_of_a_mask_shifted_by_k_pixels(k):
    # a w-wide rectangle shifted sideways by k: overlap (w - k) h, union (w + k) h
    assert silhouette_iou(rectangle(5, 10 + k), rectangle(5, 10)) == pytest.approx((20 - k) / (20 + k))
    # shifted down by k: overlap (h - k) w, union (h + k) w
    assert silhouette_iou(rectangle(5 + k, 10), rectangle(5, 10)) == pytest.approx((10 - k) / (10 + k))


def test_iou_pools_the_frames_of_a_clip():
    pred = np.stack([rectangle(5, 10), rectangle(5, 13)])
    truth = np.stack([rectangle(5, 10), rectangle(5, 10)])
    # frame 0: 200 / 200; frame 1: 170 / 230; pooled, not averaged per frame
    assert silhouette_iou(pred, truth) == pytest.approx((200 + 170) / (200 + 230))
    assert math.isnan(silhouette_iou(np.zeros((2, 4, 4), bool), np.zeros((2, 4, 4), bool)))
    with pytest.raises(ValueError, match="one shape"):
        silhouette_iou(pred, truth[0])


def test_robot_layer_on_data_without_robot_state_is_refused(toy, tmp_path):
    data, _ = toy
    config = EvalConfig(data=data, out=str(tmp_path), engine="warp", baselines="", robot_layer="on")
    with pytest.raises(ValueError, match="robot state"):
        evaluate(config)


@pytest.mark.slow
def test_eval_reports_robot_rows_for_a_held_out_urdf_robot(tmp_path):
    from offline_training.synth import SynthConfig, synthesize

    data = tmp_path / "data"
    synthesize(
        SynthConfig(
            out=str(data),
            split="test",
            robots="xarm6_bullet",
            num_samples=1,
            num_frames=5,
            height=96,
            width=128,
            robot_scale=(1.0, 1.0),
        ),
        show_progress=False,
    )
    out = tmp_path / "eval"
    result = evaluate(EvalConfig(data=str(data), out=str(out), engine="warp", baselines="warp", mode="image"))
    means = result["mean"]
    assert list(means) == ["pushpull", "warp", "pushpull+robot", "pushpull+robot-no-memory"]
    for row in means.values():
        assert all(not math.isnan(row[c]) for c in ("psnr_robot", "ssim_robot", "iou_robot"))
    # the robot drawn from its model covers the simulator's robot; the warp leaves its far side open
    assert means["pushpull+robot"]["iou_robot"] >= 0.9
    assert means["pushpull+robot"]["iou_robot"] > means["pushpull"]["iou_robot"]
    assert means["pushpull+robot"]["psnr_robot"] > means["pushpull"]["psnr_robot"]
    table = (out / "results.md").read_text()
    assert "| robot | method | samples | psnr_robot |" in table
    assert "| xarm6_bullet | pushpull+robot | 1 |" in table
    rows = json.loads((out / "results.json").read_text())["samples"]
    assert {r["robot"] for r in rows} == {"xarm6_bullet"}


def test_hidden_by_robot_is_the_wall_behind_the_robot_seen_from_a_shifted_camera():
    from offline_training.metrics import hidden_by_robot

    f, b, wall = 100.0, 0.3, 3.0
    K = np.array([[f, 0, 29.5], [0, f, 19.5], [0, 0, 1]])
    robot = rectangle(10, 20)  # rows 10-19, columns 20-39 of the source
    depth_src = np.full((40, 60), wall)
    depth_src[robot] = 1.5
    T_src_dst = np.eye(4)
    T_src_dst[0, 3] = b  # the target camera 0.3 m right of the source: the wall moves f b / Z = 10 px
    depth_dst = np.full((40, 60), wall)
    hidden = hidden_by_robot(depth_dst, depth_src, robot, K, K, T_src_dst)
    np.testing.assert_array_equal(hidden, rectangle(10, 20 - 10))
    # the robot's own surface (nearer than the source's robot pixels' depth + 2 %) is not hidden by it
    assert not hidden_by_robot(np.full((40, 60), 1.5), depth_src, robot, K, K, np.eye(4)).any()
