"""A minimal ROS 2-compatible publish/subscribe layer on cyclonedds, for running without rclpy.

rmw_cyclonedds_cpp puts ROS topic `/a/b` on the DDS topic `rt/a/b` with the type `pkg::msg::dds_::Type_`; using
the same names and XCDR1 layouts (see `messages.py`) lets these endpoints talk to real ROS 2 nodes on the same
domain (ROS_DOMAIN_ID). Only what the virtual camera needs is covered: Image, CameraInfo and TFMessage,
best-effort or reliable, volatile or transient-local.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable

import numpy as np
from cyclonedds.core import Listener, Policy, Qos
from cyclonedds.domain import DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from embody4d_ros.conversions import MessageTypes
from embody4d_ros.dds import messages

# Keep-last depth of publishers; subscribers use the node's queue_size.
PUBLISHER_DEPTH = 5


def dds_types() -> MessageTypes:
    """The conversions' message bundle for cyclonedds messages (`data` as bytes, float arrays as lists)."""
    return MessageTypes(
        Image=messages.Image,
        CameraInfo=messages.CameraInfo,
        Header=messages.Header,
        Time=messages.Time,
        RegionOfInterest=messages.RegionOfInterest,
        TransformStamped=messages.TransformStamped,
        Transform=messages.Transform,
        Vector3=messages.Vector3,
        Quaternion=messages.Quaternion,
        pack_data=lambda a: np.ascontiguousarray(a).tobytes(),
        pack_floats=lambda a: [float(v) for v in np.asarray(a, dtype=np.float64).reshape(-1)],
    )


def dds_topic_name(ros_name: str) -> str:
    """ROS 2 topic name -> DDS topic name as rmw_cyclonedds_cpp maps it ('/camera/x' -> 'rt/camera/x')."""
    if not ros_name.startswith("/"):
        raise ValueError(f"use fully qualified ROS topic names (starting with '/'), got {ros_name!r}")
    return "rt" + ros_name


def qos_profile(kind: str, depth: int, transient_local: bool = False) -> Qos:
    """'sensor_data' (best effort, volatile: matches reliable publishers too) or 'reliable', keep-last `depth`.

    `transient_local` keeps the last `depth` samples for late subscribers (latched topics such as /tf_static).
    """
    if kind == "sensor_data":
        reliability = Policy.Reliability.BestEffort
    elif kind == "reliable":
        reliability = Policy.Reliability.Reliable(max_blocking_time=duration(milliseconds=100))
    else:
        raise ValueError(f"qos must be 'sensor_data' or 'reliable', got {kind!r}")
    durability = Policy.Durability.TransientLocal if transient_local else Policy.Durability.Volatile
    return Qos(reliability, Policy.History.KeepLast(depth), durability)


class DdsNode:
    """One DDS participant with ROS-named publishers and subscriptions (the rclpy.Node subset the runtime uses)."""

    def __init__(self, domain_id: int | None = None) -> None:
        if domain_id is None:
            domain_id = int(os.environ.get("ROS_DOMAIN_ID", "0"))
        self.participant = DomainParticipant(domain_id)
        self._topics: dict[str, Topic] = {}
        self._entities: list[Any] = []  # readers and writers live as long as the node

    def _topic(self, ros_name: str, msg_type: type) -> Topic:
        name = dds_topic_name(ros_name)
        if name not in self._topics:
            self._topics[name] = Topic(self.participant, name, msg_type)
        return self._topics[name]

    def create_publisher(
        self,
        msg_type: type,
        ros_name: str,
        qos: str = "reliable",
        depth: int = PUBLISHER_DEPTH,
        transient_local: bool = False,
    ) -> DataWriter:
        writer = DataWriter(
            self.participant, self._topic(ros_name, msg_type), qos=qos_profile(qos, depth, transient_local)
        )
        self._entities.append(writer)
        return writer

    def create_subscription(
        self,
        msg_type: type,
        ros_name: str,
        callback: Callable[[Any], None],
        qos: str = "sensor_data",
        depth: int = 10,
        transient_local: bool = False,
    ) -> DataReader:
        """`callback(msg)` runs on a cyclonedds listener thread for every sample, oldest first."""
        reader = DataReader(
            self.participant, self._topic(ros_name, msg_type), qos=qos_profile(qos, depth, transient_local)
        )
        lock = threading.Lock()  # one taker at a time keeps samples in order

        def deliver(_: Any = None) -> None:
            with lock:
                for sample in reader.take(N=depth):
                    if isinstance(sample, msg_type):  # skip dispose/unregister notifications
                        callback(sample)

        # The listener is attached after construction, since during it cyclonedds may already call back (latched
        # samples) before the Python reader exists; what arrived meanwhile is taken right after.
        reader.set_listener(Listener(on_data_available=deliver))
        deliver()
        self._entities.append(reader)
        return reader
