"""rosbag2 reading and writing at the storage level: every message, definition and record kept as stored."""

from embody4d_ros.bag.rosbag2 import BagReader, BagWriter, ros2_type_name, typestore
from embody4d_ros.bag.storage import BagError, Definition, StoredMessage, Topic

__all__ = ["BagError", "BagReader", "BagWriter", "Definition", "StoredMessage", "Topic", "ros2_type_name", "typestore"]
