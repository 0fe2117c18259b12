"""Depth sources: wire decoding and the Depth-Anything-V2 estimator on a tiny random model (nothing downloaded)."""
import numpy as np
import pytest

from model.depth import DepthAnythingV2, DepthError, create_depth_estimator, depth_from_wire


def test_depth_from_wire_units_and_invalid():
    np.testing.assert_allclose(depth_from_wire(np.array([[0, 1500]], np.uint16), "16UC1"), [[0.0, 1.5]])
    metres = np.array([[0.7, np.nan, np.inf, -1.0]], np.float32)
    np.testing.assert_array_equal(depth_from_wire(metres, "32FC1"), np.array([[0.7, 0, 0, 0]], np.float32))
    with pytest.raises(DepthError, match="16UC1"):
        depth_from_wire(metres, "rgb8")


def _tiny_model(directory, kind):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    backbone = transformers.Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                         image_size=28, patch_size=14, out_features=["stage1", "stage2"],
                                         reshape_hidden_states=False)
    config = transformers.DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[16, 32],
                                              fusion_hidden_size=16, head_hidden_size=8, reassemble_factors=[1, 1],
                                              depth_estimation_type=kind, max_depth=5)
    torch.manual_seed(0)
    transformers.DepthAnythingForDepthEstimation(config).save_pretrained(directory)
    processor = getattr(transformers, "DPTImageProcessorPil", None) or transformers.DPTImageProcessor
    processor(size={"height": 28, "width": 28}, keep_aspect_ratio=False, ensure_multiple_of=14, do_pad=False).save_pretrained(directory)
    return directory


@pytest.mark.parametrize("kind", ["metric", "relative"])
def test_depth_anything_v2_from_local_directory(tmp_path, kind):
    model_dir = _tiny_model(tmp_path / "dav2", kind)
    estimator = create_depth_estimator("depth_anything_v2", str(model_dir))
    assert isinstance(estimator, DepthAnythingV2) and estimator.metric == (kind == "metric")
    rgb = np.random.default_rng(0).integers(0, 256, (2, 30, 40, 3), dtype=np.uint8)
    depth = estimator.estimate(rgb)
    assert depth.shape == (2, 30, 40) and depth.dtype == np.float32
    assert np.isfinite(depth).all() and (depth >= 0).all()
    if kind == "relative":
        for frame in depth:
            valid = frame[frame > 0]
            if valid.size:
                assert np.median(valid) == pytest.approx(1.0, rel=1e-3)


def test_estimator_configuration_errors(tmp_path):
    assert create_depth_estimator("sensor") is None
    with pytest.raises(DepthError, match="needs depth.model_path"):
        create_depth_estimator("depth_anything_v2", "")
    with pytest.raises(DepthError, match="no config.json"):
        create_depth_estimator("depth_anything_v2", str(tmp_path))
    with pytest.raises(DepthError, match="unknown depth source"):
        create_depth_estimator("lidar", "x")
