"""Keep every DDS participant of this process and its children on loopback (tests, benchmarks, local examples).

Cyclone DDS discovers by multicast on the first non-loopback interface unless told otherwise, and Fast DDS (rclpy's
default RMW) uses every interface; the shipped configurations in config/ pin both to 127.0.0.1.
ROS_AUTOMATIC_DISCOVERY_RANGE is SYSTEM_DEFAULT, i.e. left to those configurations: with LOCALHOST, rmw_fastrtps_cpp
(Kilted) replaces the profile's transports and announces every interface's address (measured here: locators on
eth0's address next to 127.0.0.1), while with the profile alone every locator and socket is on 127.0.0.1.
"""

from __future__ import annotations

import os
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


def loopback_environment(config_dir: Path = CONFIG_DIR) -> dict[str, str]:
    """The environment variables that pin Cyclone DDS, Fast DDS and ROS 2 discovery to this host."""
    return {
        "CYCLONEDDS_URI": (config_dir / "cyclonedds_loopback.xml").as_uri(),
        "FASTDDS_DEFAULT_PROFILES_FILE": str(config_dir / "fastdds_loopback.xml"),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "SYSTEM_DEFAULT",
    }


def pin_to_loopback() -> None:
    """Set `loopback_environment()` in os.environ (overriding any other DDS configuration) before participants exist."""
    os.environ.update(loopback_environment())
