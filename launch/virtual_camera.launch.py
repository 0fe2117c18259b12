"""Launch the Embody4D virtual camera beside a RealSense (realsense-ros topic names by default).

    ros2 launch embody4d_ros virtual_camera.launch.py
    ros2 launch embody4d_ros virtual_camera.launch.py params_file:=/path/my.yaml target_yaw_deg:=30 engine:=torch

`params_file` holds every parameter (config/virtual_camera.yaml form); each node section in it starts one
virtual camera node of that name. The other arguments override single parameters when set. The file and the
overrides are checked against the node's parameter schema here, so a typo fails at launch with the parameter's
name, and the parameters reach the node whatever `namespace` it is launched in.
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from embody4d_ros.live import launch_cameras
from embody4d_ros.params import SPECS
from launch import LaunchDescription

# launch argument -> parameter: the overrides people reach for most
OVERRIDES = {
    "color_topic": "color_topic",
    "depth_topic": "depth_topic",
    "camera_info_topic": "camera_info_topic",
    "output_namespace": "output_namespace",
    "engine": "engine",
    "model_path": "model_path",
    "mode": "mode",
    "target_mode": "target.mode",
    "target_yaw_deg": "target.yaw_deg",
    "target_pitch_deg": "target.pitch_deg",
    "target_forward_m": "target.forward_m",
    "target_pose": "target.pose",
    "qos": "qos",
    "openpi_224": "openpi_224",
}


def _nodes(context, *args, **kwargs):
    arguments = {param: LaunchConfiguration(arg).perform(context) for arg, param in OVERRIDES.items()}
    cameras = launch_cameras(LaunchConfiguration("params_file").perform(context), arguments)
    return [
        Node(
            package="embody4d_ros",
            executable="virtual_camera_node",
            name=name,
            namespace=LaunchConfiguration("namespace"),
            parameters=[params],
            output="screen",
            emulate_tty=True,
        )
        for name, params in cameras.items()
    ]


def generate_launch_description():
    arguments = [
        DeclareLaunchArgument(
            "params_file",
            default_value=[FindPackageShare("embody4d_ros"), "/config/virtual_camera.yaml"],
            description="ROS 2 parameters file of the virtual camera(s)",
        ),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node(s)"),
    ]
    arguments += [
        DeclareLaunchArgument(
            arg, default_value="", description=f"override {param}: {SPECS[param].description} (empty: from params_file)"
        )
        for arg, param in OVERRIDES.items()
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])
