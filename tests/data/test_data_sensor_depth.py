"""Samples can carry sensor-like source depth next to the clean depth (`embody4d synth --depth-model`)."""

import numpy as np
import pytest

from model.depth_sensor import sensor_depth
from offline_training.data import open_dataset
from offline_training.synth import SynthConfig, synthesize

TINY = dict(num_frames=1, height=48, width=64, samples_per_shard=2)


@pytest.mark.slow
def test_stereo_dataset_stores_sensor_depth_beside_the_clean_depth(tmp_path):
    synthesize(
        SynthConfig(out=str(tmp_path / "stereo"), num_samples=2, seed=4, depth_model="stereo", **TINY),
        show_progress=False,
    )
    synthesize(SynthConfig(out=str(tmp_path / "clean"), num_samples=2, seed=4, **TINY), show_progress=False)
    stereo, clean = open_dataset(str(tmp_path / "stereo")), open_dataset(str(tmp_path / "clean"))
    for noisy, plain in zip(stereo, clean):
        np.testing.assert_array_equal(noisy["src_depth"], plain["src_depth"])  # the clean depth is untouched
        assert "src_depth_sensor" not in plain and "depth_model" not in plain["meta"]
        assert noisy["meta"]["depth_model"] == "stereo"
        sensor = noisy["src_depth_sensor"]
        assert sensor.shape == plain["src_depth"].shape and sensor.dtype == np.float32
        # reproducible from the stored render seed with the sensor model itself
        expected = sensor_depth(plain["src_depth"], plain["K_src"], "stereo", seed=noisy["meta"]["seed"])
        np.testing.assert_array_equal(sensor, expected)
        assert not np.array_equal(sensor, plain["src_depth"])
