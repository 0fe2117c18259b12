"""Depth sources: sensor depth on the wire, and Depth-Anything-V2 from a local directory (tiny random config)."""

import numpy as np
import pytest

from model.depth import DepthError, create_depth_estimator, depth_from_wire


def test_wire_encodings_to_metres():
    mm = np.array([[0, 1000], [2500, 65535]], dtype=np.uint16)
    np.testing.assert_allclose(depth_from_wire(mm, "16UC1"), [[0.0, 1.0], [2.5, 65.535]], rtol=1e-6)
    metres = np.array([[np.nan, 1.5], [np.inf, -2.0]], dtype=np.float32)
    np.testing.assert_array_equal(depth_from_wire(metres, "32FC1"), [[0.0, 1.5], [0.0, 0.0]])
    with pytest.raises(DepthError, match="16UC1"):
        depth_from_wire(mm, "rgb8")


def test_sensor_source_has_no_estimator_and_estimator_needs_a_directory(tmp_path):
    assert create_depth_estimator("sensor") is None
    with pytest.raises(DepthError, match="depth.model_path"):
        create_depth_estimator("depth_anything_v2", "")
    with pytest.raises(DepthError, match="config.json"):
        create_depth_estimator("depth_anything_v2", str(tmp_path))
    with pytest.raises(DepthError, match="unknown depth source"):
        create_depth_estimator("lidar", str(tmp_path))


def _tiny_model_dir(path, depth_type):
    transformers = pytest.importorskip("transformers")
    backbone = transformers.Dinov2Config(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        patch_size=14,
        image_size=56,
        out_features=["stage1", "stage2", "stage3", "stage4"],
        reshape_hidden_states=False,
    )
    config = transformers.DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=32,
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
        depth_estimation_type=depth_type,
        max_depth=10,
    )
    transformers.DepthAnythingForDepthEstimation(config).save_pretrained(path)
    transformers.DPTImageProcessorPil(
        size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14
    ).save_pretrained(path)
    return path


def test_metric_estimator_returns_metres_at_input_size(tmp_path):
    estimator = create_depth_estimator("depth_anything_v2", str(_tiny_model_dir(tmp_path / "m", "metric")))
    assert estimator.metric
    rgb = np.random.default_rng(0).integers(0, 256, (2, 30, 40, 3), dtype=np.uint8)
    depth = estimator.estimate(rgb)
    assert depth.shape == (2, 30, 40) and depth.dtype == np.float32
    # the metric head is a sigmoid times max_depth: strictly inside (0, 10) m
    assert np.all(depth > 0) and np.all(depth < 10)
    with pytest.raises(DepthError, match="uint8"):
        estimator.estimate(rgb[0])


def test_relative_disparity_is_inverted_and_median_scaled(tmp_path):
    estimator = create_depth_estimator("depth_anything_v2", str(_tiny_model_dir(tmp_path / "r", "relative")))
    assert not estimator.metric
    assert estimator.estimate(np.zeros((1, 28, 28, 3), np.uint8)).shape == (1, 28, 28)
    disparity = np.array([[1.0, 2.0], [4.0, 0.0]], dtype=np.float32)
    depth = estimator._disparity_to_depth(disparity)
    assert depth[1, 1] == 0  # no disparity: unknown depth
    valid = depth[depth > 0]
    assert np.median(valid) == pytest.approx(estimator.relative_median_m)
    # nearer (larger disparity) is smaller depth, in ratio 1 : 1/2 : 1/4
    np.testing.assert_allclose(valid / valid[0], [1.0, 0.5, 0.25], rtol=1e-6)
