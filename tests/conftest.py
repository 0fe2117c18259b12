import os

import pytest

# MuJoCo picks its GL backend at import time; the machines here render headless through EGL (Mesa llvmpipe).
os.environ.setdefault("MUJOCO_GL", "egl")


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(data directory, preset JSON) of the training tests' tiny analytic dataset: 3 samples of 5 frames at 32x48."""
    from offline_training.training.toy import ToyDataset, toy_preset

    root = tmp_path_factory.mktemp("toy")
    data = ToyDataset(str(root / "data"), num_samples=3, num_frames=5).write()
    return data, toy_preset(str(root / "preset.json"))


@pytest.fixture(scope="session")
def middlebury_motorcycle():
    """Middlebury 2014 "Motorcycle" (scikit-image's 4x downsampled copy): (left, right, left depth m with 0 where the
    ground truth has none, K_left, K_right, T_right_left)."""
    import numpy as np

    skimage_data = pytest.importorskip("skimage.data")
    left, right, disparity = skimage_data.stereo_motorcycle()
    # Middlebury calibration (cam0, cam1, doffs, baseline) scaled by the 1/4 downsampling; pixel centres at integers
    scale = 0.25
    focal = 3979.911 * scale
    cx_left, cx_right, cy = ((c + 0.5) * scale - 0.5 for c in (1244.772, 1369.115, 1019.507))
    doffs, baseline = 124.343 * scale, 0.193001
    K_left = np.array([[focal, 0.0, cx_left], [0.0, focal, cy], [0.0, 0.0, 1.0]])
    K_right = K_left.copy()
    K_right[0, 2] = cx_right
    with np.errstate(divide="ignore"):
        depth = np.where(np.isfinite(disparity), focal * baseline / (disparity + doffs), 0.0).astype(np.float32)
    T_right_left = np.eye(4)
    T_right_left[0, 3] = -baseline  # the right camera sits +b along the left camera's x axis
    return left, right, depth, K_left, K_right, T_right_left
