import os
import subprocess
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

# MuJoCo picks its GL backend at import time; the machines here render headless through EGL (Mesa llvmpipe).
os.environ.setdefault("MUJOCO_GL", "egl")

# Tests talk DDS on loopback only: CYCLONEDDS_URI, FASTDDS_DEFAULT_PROFILES_FILE and ROS_AUTOMATIC_DISCOVERY_RANGE
# point at config/*_loopback.xml, for this process and every process a test starts.
from embody4d_ros.dds.loopback import pin_to_loopback  # noqa: E402

pin_to_loopback()


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(data directory, preset JSON) of the training tests' tiny analytic dataset: 3 samples of 5 frames at 32x48."""
    from offline_training.training.toy import ToyDataset, toy_preset

    root = tmp_path_factory.mktemp("toy")
    data = ToyDataset(str(root / "data"), num_samples=3, num_frames=5).write()
    return data, toy_preset(str(root / "preset.json"))


@pytest.fixture
def wait_ready() -> Callable[[subprocess.Popen, float], None]:
    """`wait_ready(process, timeout_s)`: block until a tool prints `ready` (its DDS readers and writers exist),
    failing with its stderr if it exits first."""

    def wait(process: subprocess.Popen, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if line.strip() == "ready":
                return
            if not line and process.poll() is not None:
                pytest.fail(f"{process.args} exited with {process.returncode}: {process.stderr.read()[-2000:]}")
        pytest.fail(f"{process.args} not ready after {timeout_s} s")

    return wait


@pytest.fixture(scope="session")
def panda_robot():
    """`model.robot.RobotModel` of pybullet_data's franka_panda URDF (~100k visual triangles; loaded once)."""
    pybullet_data = pytest.importorskip("pybullet_data")
    from model.robot import RobotModel

    return RobotModel.from_file(os.path.join(pybullet_data.getDataPath(), "franka_panda", "panda.urdf"))


@dataclass(frozen=True)
class StereoPair:
    """A rectified stereo pair with ground truth: colour (H, W, 3) uint8, the left depth (H, W) float32 metres (NaN
    where there is no ground-truth disparity), intrinsics (3, 3) and T_right_left (4, 4)."""

    left: np.ndarray
    right: np.ndarray
    depth: np.ndarray
    K_left: np.ndarray
    K_right: np.ndarray
    T_right_left: np.ndarray


# Middlebury 2014 "Motorcycle" calib.txt at full resolution (cam0, cam1 principal points; doffs = their x difference)
MOTORCYCLE_FOCAL_PX = 3979.911
MOTORCYCLE_CX_LEFT, MOTORCYCLE_CX_RIGHT, MOTORCYCLE_CY = 1244.772, 1369.115, 1019.507
MOTORCYCLE_BASELINE_M = 0.193001
MOTORCYCLE_DOWNSAMPLING = 4


@pytest.fixture(scope="session")
def motorcycle() -> StereoPair:
    """Middlebury 2014 "Motorcycle" as scikit-image ships it (4x downsampled with downscale_local_mean), left -> right.

    The calibration is Middlebury's, mapped to the downsampled grid. With pixel centres at integer coordinates (the
    project's convention), a 4x4 block mean puts new pixel i at old coordinate 4 i + 1.5, so a principal point c maps
    to (c + 0.5) / 4 - 0.5 and focal lengths and doffs scale by 1/4. scikit-image's docstring divides the principal
    point by 4 (311.193, 254.877), which is 0.375 px off. A horizontal stereo warp cannot see a shift common to both
    cameras, which is why the two copies of this fixture that used the two values agreed on every result.
    """
    skimage_data = pytest.importorskip("skimage.data")
    left, right, disparity = skimage_data.stereo_motorcycle()
    scale = 1.0 / MOTORCYCLE_DOWNSAMPLING
    focal = MOTORCYCLE_FOCAL_PX * scale
    cx_left, cx_right, cy = ((c + 0.5) * scale - 0.5 for c in (MOTORCYCLE_CX_LEFT, MOTORCYCLE_CX_RIGHT, MOTORCYCLE_CY))
    doffs = cx_right - cx_left
    K_left = np.array([[focal, 0.0, cx_left], [0.0, focal, cy], [0.0, 0.0, 1.0]])
    K_right = K_left.copy()
    K_right[0, 2] = cx_right
    # depth = f b / (d + doffs); NaN disparity (no ground truth) gives NaN depth, which the warp treats as invalid
    depth = (focal * MOTORCYCLE_BASELINE_M / (disparity + doffs)).astype(np.float32)
    T_right_left = np.eye(4)
    T_right_left[0, 3] = -MOTORCYCLE_BASELINE_M  # the right camera sits +b along the left camera's x axis
    return StereoPair(left, right, depth, K_left, K_right, T_right_left)
