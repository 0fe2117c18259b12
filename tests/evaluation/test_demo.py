"""`embody4d demo`: video writer and (slow) the whole sim -> bag -> warp -> engine path against ground truth."""

import json

import imageio.v2 as imageio
import numpy as np
import pytest

from embody4d_ros.cli import main
from embody4d_ros.demo import LABELS, write_side_by_side


def test_side_by_side_video_has_one_column_per_stream(tmp_path):
    rng = np.random.default_rng(0)
    columns = [rng.integers(0, 255, (3, 48, 64, 3), dtype=np.uint8) for _ in LABELS]
    path = tmp_path / "clip.mp4"
    write_side_by_side(path, columns, fps=5)
    frames = imageio.mimread(path)
    assert len(frames) == 3 and frames[0].shape == (48, 64 * len(LABELS), 3)


@pytest.mark.slow
def test_demo_end_to_end_matches_simulated_virtual_view(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--frames", "6"]) == 0
    report = json.loads((out / "report.json").read_text())
    for name in ("side_by_side.mp4", "report.md", "source_bag/metadata.yaml", "augmented_bag/metadata.yaml"):
        assert (out / name).is_file(), name
    # the warp reproduces the true virtual view where it has data, through 16UC1 millimetre depth from the bag
    assert report["psnr_db"]["warp_covered_pixels"] >= 30.0
    # and covers nearly everything the source camera can see (the rest are silhouette pixels)
    assert report["coverage"] >= report["source_visible_fraction"] - 0.03
    assert report["coverage"] <= report["source_visible_fraction"] + 0.03
    assert report["latency_ms"]["total"]["mean"] > 0
    assert len(imageio.mimread(out / "side_by_side.mp4")) == 6
    # the network runs by default, scored on disoccluded pixels next to the classical fills of the same warps
    assert report["engine"] == "torch"
    for key in ("filled_disoccluded", "pushpull_disoccluded", "telea_disoccluded", "telea_all_pixels"):
        assert 5.0 < report["psnr_db"][key] < 60.0, key
    # augment-bag found the robot topics in the recording and drew the robot in every frame; the recording is right
    # (the model at the recorded joints and TF covers the simulator's own robot mask in the source camera)
    robot = report["robot_layer"]
    assert robot["outcomes"] == {"drawn": 6} and robot["model_silhouette_iou_source"] >= 0.98
    plain, aware = robot["plain"], robot["robot_aware"]
    assert aware["silhouette_iou"] >= 0.9 and aware["silhouette_iou"] > plain["silhouette_iou"] + 0.1
    assert aware["robot_region_psnr_db"] >= plain["robot_region_psnr_db"] + 3.0
    assert aware["psnr_plain_disoccluded_db"] > plain["psnr_plain_disoccluded_db"]
    sheet = imageio.imread(out / robot["picture"])
    assert sheet.shape == (480, 4 * 640, 3)
    assert "engine (None)" not in (out / "report.md").read_text()
