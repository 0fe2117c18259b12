"""Embody4D-ROS: the ROS side (node, ROS-free runtime, message conversion, parameters, augment-bag, CLI)."""

__version__ = "0.1.0"
