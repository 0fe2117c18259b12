"""The header and size of a serialised sensor_msgs/Image or CameraInfo, read from its CDR bytes without deserialising.

The test harness's subscribers (ros_graph.Probe) take images raw (rclpy `raw=True`) when they only count and pair
frames: rclpy's deserialisation of a 640x480 rgb8 image costs milliseconds of CPU per frame on the cores the node
under test needs, and all they need is its stamp, frame_id, size and encoding.

The layout, as rmw_fastrtps_cpp and rmw_cyclonedds_cpp put ROS 2 messages on the wire (plain CDR, XCDR version 1):
a 4-byte encapsulation header (0x00 0x01: little-endian CDR, then two option bytes), then the fields in message
order, each primitive aligned to its own size counted from the end of the encapsulation header. A string is a uint32
length that counts its terminating NUL, then its bytes and the NUL; `uint8[]` is a uint32 length, then the bytes.

    std_msgs/Header:        stamp.sec int32, stamp.nanosec uint32, frame_id string
    sensor_msgs/Image:      header, height uint32, width uint32, encoding string, is_bigendian uint8, step uint32,
                            data uint8[]
    sensor_msgs/CameraInfo: header, height uint32, width uint32, ... (not read further)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

CDR_LE = b"\x00\x01"  # the encapsulation kind of little-endian plain CDR; rclpy on x86 and ARM writes it
ENCAPSULATION_SIZE = 4


@dataclass(frozen=True)
class StampedSize:
    """What an Image and a CameraInfo share at their start: the header and the image size."""

    stamp_ns: int
    frame_id: str
    height: int
    width: int


@dataclass(frozen=True)
class ImageHead(StampedSize):
    """An Image's fields but its pixels, and how many bytes of pixels it carries."""

    encoding: str
    is_bigendian: int
    step: int
    data_length: int


class _Reader:
    """Little-endian CDR fields from `offset` on, aligned as CDR aligns them."""

    def __init__(self, cdr: bytes) -> None:
        if cdr[:2] != CDR_LE:
            raise ValueError(f"not little-endian plain CDR: encapsulation {cdr[:ENCAPSULATION_SIZE].hex()}")
        self.cdr, self.offset = cdr, ENCAPSULATION_SIZE

    def _primitive(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        self.offset += -(self.offset - ENCAPSULATION_SIZE) % size  # padding up to a multiple of its size
        (value,) = struct.unpack_from(fmt, self.cdr, self.offset)
        self.offset += size
        return value

    def int32(self) -> int:
        return self._primitive("<i")

    def uint32(self) -> int:
        return self._primitive("<I")

    def uint8(self) -> int:
        return self._primitive("<B")

    def string(self) -> str:
        length = self.uint32()  # with the terminating NUL
        text = self.cdr[self.offset : self.offset + length - 1]
        if length < 1 or len(text) != length - 1:
            raise ValueError(f"string of {length} bytes at offset {self.offset} overruns {len(self.cdr)} bytes")
        self.offset += length
        return text.decode()


def _stamped_size(reader: _Reader) -> StampedSize:
    sec, nanosec = reader.int32(), reader.uint32()
    frame_id = reader.string()
    height, width = reader.uint32(), reader.uint32()
    return StampedSize(sec * 1_000_000_000 + nanosec, frame_id, height, width)


def read_stamped_size(cdr: bytes) -> StampedSize:
    """Header and size of a serialised Image or CameraInfo."""
    return _stamped_size(_Reader(cdr))


def read_image_head(cdr: bytes) -> ImageHead:
    """Every field of a serialised Image but its pixels, and the length of its pixel data."""
    reader = _Reader(cdr)
    head = _stamped_size(reader)
    encoding, is_bigendian, step, data_length = reader.string(), reader.uint8(), reader.uint32(), reader.uint32()
    if reader.offset + data_length > len(cdr):
        raise ValueError(f"image data of {data_length} bytes overruns the message ({len(cdr)} bytes)")
    return ImageHead(**vars(head), encoding=encoding, is_bigendian=is_bigendian, step=step, data_length=data_length)
