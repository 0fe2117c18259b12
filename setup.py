"""ament_python build for ROS 2 (colcon) that also installs with pip.

pip:    pip install -e ".[all]"        (torch==2.13.0 first on CPU machines, see the README)
colcon: colcon build --packages-select embody4d_ros
"""

import re
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "embody4d_ros"
# the one source of the version (package.xml repeats it as text; tests/repo/test_repo_version.py keeps them equal)
INIT = (Path(__file__).parent / PACKAGE / "__init__.py").read_text()
VERSION = re.search(r'^__version__ = "([^"]+)"$', INIT, re.M)[1]

EXTRAS = {
    # the network (torch engine), depth estimator and weights I/O
    "torch": ["torch>=2.4", "diffusers>=0.32", "transformers>=4.45", "safetensors>=0.4", "accelerate>=1.0"],
    # data engine, training and evaluation; also the demo's simulator and video writer
    "training": [
        "accelerate>=1.0",
        "mujoco>=3.2",
        "imageio>=2.30",
        "imageio-ffmpeg>=0.5",
        "scikit-image>=0.24",
        "scikit-learn>=1.4",
        "matplotlib>=3.8",
        "tensorboard>=2.16",
        # whole multi-object OBJ meshes for URDF robots (MuJoCo keeps only the first object); bench-policy decimates
        # the robot's meshes (render cost under llvmpipe)
        "trimesh>=4.0",
        "fast-simplification>=0.1",
    ],
    # the robot layer: URDF visual meshes (OBJ, STL; COLLADA through pycollada)
    "robot": ["trimesh>=4.0", "pycollada>=0.8", "scipy>=1.10"],
    # deployment graphs and runtimes (TensorRT comes from NVIDIA's distribution where present)
    "export": ["onnx>=1.16", "onnxruntime>=1.18", "onnxscript>=0.1"],
    # ROS 2 wire-compatible transport without a ROS installation (tests, non-ROS machines)
    "dds": ["cyclonedds>=0.10"],
    # RealSense without ROS (embody4d_ros/realsense.py); imports only with the system's libusb-1.0-0 (Makefile setup)
    "realsense": ["pyrealsense2>=2.55"],
    # tests and the tooling behind `make lint` (ruff, mypy, import-linter) and pre-commit
    "dev": [
        "pytest>=8",
        "pytest-timeout>=2.3",
        "ruff>=0.8",
        "mypy>=1.13",
        "import-linter>=2.1",
        "pre-commit>=4",
        "types-PyYAML",
    ],
}
EXTRAS["all"] = sorted({req for reqs in EXTRAS.values() for req in reqs})

setup(
    name=PACKAGE,
    version=VERSION,
    description="Embody4D virtual camera for ROS 2: novel-view synthesis of robot videos from one RGB-D camera",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(
        include=["embody4d_ros", "embody4d_ros.*", "model", "model.*", "offline_training", "offline_training.*"]
    ),
    include_package_data=True,
    package_data={"model": ["presets/*.json", "weights/*/*", "weights/*/*/*"]},  # the shipped tiny model
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
    ],
    install_requires=[
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
        "numba>=0.59",
        "pyyaml>=6",
        "tqdm>=4.66",
        "rosbags>=0.10",
        "mcap>=1.1",  # augment-bag copies MCAP records verbatim (channel metadata, metadata records, attachments)
        "zstandard>=0.21",  # rosbag2 zstd file and message compression
    ],
    extras_require=EXTRAS,
    zip_safe=True,
    maintainer="Embody4D-ROS developers",
    maintainer_email="embody4d-ros@example.org",
    entry_points={
        "console_scripts": [
            "embody4d = embody4d_ros.cli:main",
            "virtual_camera_node = embody4d_ros.node:main",
        ],
    },
)
