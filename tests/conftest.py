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
def panda_robot():
    """`model.robot.RobotModel` of pybullet_data's franka_panda URDF (~100k visual triangles; loaded once)."""
    pybullet_data = pytest.importorskip("pybullet_data")
    from model.robot import RobotModel

    return RobotModel.from_file(os.path.join(pybullet_data.getDataPath(), "franka_panda", "panda.urdf"))
