import os
import subprocess
import time
from typing import Callable

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
