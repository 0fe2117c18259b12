"""package.xml says what the installed node imports, no more and no less: rosdep installs exactly its keys on a robot,
so a ROS package the code imports but package.xml omits fails only there, and one it lists but nobody imports (the
old cv_bridge, message_filters) makes users install what is not needed."""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What runs on the robot: the node's package, the model it loads and the launch file.
RUNTIME_SOURCES = ("embody4d_ros", "model", "launch")
ROS_PACKAGE = re.compile(
    r"^(rclpy|launch|launch_ros|builtin_interfaces|rcl_interfaces|cv_bridge|message_filters|tf2_ros|tf2_py"
    r"|diagnostic_updater|rosbag2_py|ament_index_python|\w+_msgs|\w+_srvs|\w+_interfaces)$"
)
# rosdep keys of the Python libraries package.xml lists (the others come from pip through setup.py).
ROSDEP_PYTHON_KEYS = {"numpy": "python3-numpy", "cv2": "python3-opencv", "yaml": "python3-yaml", "tqdm": "python3-tqdm"}


def imported_top_level_modules() -> set[str]:
    modules: set[str] = set()
    for folder in RUNTIME_SOURCES:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    modules.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    modules.add(node.module.split(".")[0])
    return modules


def exec_depends() -> set[str]:
    return {element.text.strip() for element in ET.parse(ROOT / "package.xml").getroot().iter("exec_depend")}


def test_every_imported_ros_package_is_an_exec_depend():
    missing = {m for m in imported_top_level_modules() if ROS_PACKAGE.match(m)} - exec_depends()
    assert not missing, f"imported but not in package.xml's exec_depend: {sorted(missing)}"


def test_every_ros_exec_depend_is_imported():
    ros_depends = {d for d in exec_depends() if not d.startswith("python3-")}
    unused = ros_depends - imported_top_level_modules()
    assert not unused, f"package.xml lists ROS packages nothing imports: {sorted(unused)}"


def test_python_rosdep_keys_match_the_imports():
    imported = imported_top_level_modules()
    expected = {key for module, key in ROSDEP_PYTHON_KEYS.items() if module in imported}
    listed = {d for d in exec_depends() if d.startswith("python3-")}
    assert listed == expected, f"listed {sorted(listed)}, the code imports {sorted(expected)}"


def test_the_scan_sees_the_node_imports():
    # Guards the scan itself: the node's lazily imported message packages must be found.
    imported = imported_top_level_modules()
    assert {"rclpy", "sensor_msgs", "tf2_msgs", "numpy"} <= imported
