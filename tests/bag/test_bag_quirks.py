"""augment-bag on the quirks of real recordings: every input message, definition and record kept (checked with
sqlite3 and the mcap library, not with our reader), every frame that can be made made."""

import numpy as np
import pytest
from bag_fixtures import (
    ADD_TWO_INTS_DEF,
    COLOR,
    EXTRINSICS_DEF,
    IMAGE_DEF,
    INFO,
    QOS_EDITED,
    Bag,
    Contents,
    Spec,
    assert_copied,
    build_bag,
    camera_messages,
    camera_specs,
    read_bag,
    read_mcap_data,
    warp_only,
)
from mcap.writer import CompressionType

from embody4d_ros.augment_bag import augment_bag
from embody4d_ros.bag_io import read_rgbd_frames
from embody4d_ros.params import resolve

FRAMES = 6
VIRTUAL_IMAGE = "/virtual_camera/color/image_raw"
IMU_DEF = "std_msgs/Header header\ngeometry_msgs/Quaternion orientation\n# ... as recorded, comments included\n"


def extras(n: int = 3, t0: int = 1_700_000_000_000_000_000) -> list:
    """Topics the virtual camera does not read: copied as opaque bytes, definitions or not."""
    return [
        ("/camera/camera/extrinsics/depth_to_color", t0 + 5, bytes(range(48))),
        *[("/imu", t0 + 7 + i * 1000, np.random.default_rng(i).bytes(40 + i)) for i in range(n)],
        ("/add_two_ints/_service_event", t0 + 9, b"\x00\x01\x00\x00service event"),
    ]


def extra_specs(with_hashes: bool = False) -> list:
    digest = "RIHS01_" + "ab" * 32 if with_hashes else ""
    return [
        Spec(
            "/camera/camera/extrinsics/depth_to_color",
            "realsense2_camera_msgs/msg/Extrinsics",
            EXTRINSICS_DEF,
            type_hash=digest,
        ),
        Spec("/imu", "sensor_msgs/msg/Imu", IMU_DEF, type_hash=digest),
        # rosbag2 stores a service-event topic's definition under the service's name
        Spec(
            "/add_two_ints/_service_event",
            "example_interfaces/srv/AddTwoInts_Event",
            ADD_TWO_INTS_DEF,
            definition_type="example_interfaces/srv/AddTwoInts",
            type_hash=digest,
        ),
    ]


def augment(tmp_path, source, **kwargs):
    cameras = resolve(None, ["target.mode=pose", "sync_slop_s=0.005"])
    return augment_bag(source, tmp_path / "out", cameras, progress=False, **kwargs)


def virtual_frames(contents):
    return [m for m in contents.messages if m[0] == VIRTUAL_IMAGE]


QUIRKS = {
    # metadata.yaml says best effort, the storage says reliable: rosbags' reader yields none of these messages
    "qos_disagreement": dict(metadata_qos={COLOR: QOS_EDITED, INFO: QOS_EDITED, "/imu": QOS_EDITED}),
    "no_hashes_humble_sqlite": dict(version=5, sqlite_schema="humble", ros_distro="humble"),
    "dashing_names": dict(version=4, sqlite_schema="dashing", dashing=True),
    "foxy_sqlite": dict(version=4, sqlite_schema="foxy"),
    "zstd_file": dict(compression="file"),
    "zstd_message": dict(compression="message"),
    "split_files": dict(files=3),
    "custom_data_v6": dict(version=6, custom_data={"robot": "franka", "operator": "ana"}),
    "mcap_hashes": dict(storage="mcap", hashes=True),
    "mcap_no_hashes": dict(storage="mcap", version=8),
    "mcap_qos_disagreement": dict(storage="mcap", metadata_qos={COLOR: QOS_EDITED, "/imu": QOS_EDITED}),
    "mcap_zstd_file_split": dict(storage="mcap", compression="file", files=2),
    "mcap_zstd_message": dict(storage="mcap", compression="message"),
    "mcap_lz4_chunks": dict(storage="mcap", chunks=CompressionType.LZ4),
    "mcap_uncompressed_chunks": dict(storage="mcap", chunks=CompressionType.NONE),
    # no statistics record: the counts come from the message records themselves
    "mcap_unchunked_no_statistics": dict(storage="mcap", mcap_chunked=False, mcap_statistics=False),
}


@pytest.mark.parametrize("quirk", sorted(QUIRKS))
def test_quirk_bag_copied_message_for_message(tmp_path, quirk):
    options = dict(QUIRKS[quirk])
    dashing, hashes = options.pop("dashing", False), options.pop("hashes", False)
    chunks = options.pop("chunks", CompressionType.ZSTD)
    specs = camera_specs(dashing=dashing) + extra_specs(with_hashes=hashes)
    if options.get("sqlite_schema") in ("humble", "foxy", "dashing"):  # these recorders stored no definitions
        specs = [Spec(s.name, s.type) for s in specs]
    bag = Bag(specs, camera_messages(FRAMES) + extras(), mcap_chunk_compression=chunks, **options)
    source = build_bag(tmp_path / "in", bag)

    summary = augment(tmp_path, source, engine_factory=warp_only)

    before, after = assert_copied(source, tmp_path / "out")
    assert summary["cameras"] == {"virtual_camera": FRAMES} and len(virtual_frames(after)) == FRAMES
    assert summary["messages"] == len(before.messages)
    if bag.storage == "mcap":
        assert before.records[1] == after.records[0] and after.records[1][0] == "rosbag2"  # other records verbatim
        assert after.records[1][1]["ROS_DISTRO"] == bag.ros_distro
        assert after.attachments == before.attachments
        assert after.extras["compression"] == before.extras["compression"]
        assert after.extras["profile"] == "ros2"
        copied = [p for p in after.extras["publish"] if p[0] in before.topics]
        assert sorted(copied) == sorted(before.extras["publish"])  # publish time and sequence kept
    else:
        assert after.extras["tables"] == before.extras["tables"]
        assert after.extras.get("schema") == before.extras.get("schema")  # schema version and ros_distro


def test_definitions_are_copied_verbatim_not_regenerated(tmp_path):
    """An Imu definition as recorded (comments and all) is not replaced by a regenerated one."""
    for storage in ("sqlite3", "mcap"):
        bag = Bag(camera_specs() + extra_specs(), camera_messages(2) + extras(), storage=storage)
        source = build_bag(tmp_path / f"in_{storage}", bag)
        augment_bag(
            source,
            tmp_path / f"out_{storage}",
            resolve(None, ["target.mode=pose"]),
            engine_factory=warp_only,
            progress=False,
        )
        after = read_bag(tmp_path / f"out_{storage}")
        texts = {d[0]: d[-2] if storage == "sqlite3" else d[2] for d in after.definitions}
        assert texts["sensor_msgs/msg/Imu"] == IMU_DEF
        service = "example_interfaces/srv/AddTwoInts" + ("" if storage == "sqlite3" else "_Event")
        assert texts[service] == ADD_TWO_INTS_DEF
        assert texts["sensor_msgs/msg/Image"] == IMAGE_DEF


@pytest.mark.parametrize("info_delay,info_after_image", [(0, True), (3, False), (3, True)])
def test_late_camera_info_serves_earlier_frames(tmp_path, info_delay, info_after_image):
    frames = 8
    messages = camera_messages(frames, info_delay=info_delay, info_after_image=info_after_image)
    source = build_bag(tmp_path / "in", Bag(camera_specs(), messages))
    summary = augment(tmp_path, source, engine_factory=warp_only)
    assert summary["cameras"] == {"virtual_camera": frames}
    _, after = assert_copied(source, tmp_path / "out")
    stamps = sorted(t for topic, t, _ in messages if topic == COLOR)
    # every virtual frame exists (log times are those of the message completing each frame, never before it)
    assert len(virtual_frames(after)) == frames and min(t for _, t, _ in virtual_frames(after)) >= stamps[0]
    assert len(list(read_rgbd_frames(source))) == frames


def test_reader_sees_messages_whose_metadata_qos_disagrees(tmp_path):
    """read_rgbd_frames (demo, dds play, pseudo-4D) reads the storage, not metadata.yaml's idea of it."""
    for storage in ("sqlite3", "mcap"):
        source = build_bag(
            tmp_path / storage,
            Bag(
                camera_specs(), camera_messages(4), storage=storage, metadata_qos={COLOR: QOS_EDITED, INFO: QOS_EDITED}
            ),
        )
        frames = list(read_rgbd_frames(source))
        assert len(frames) == 4 and frames[0].rgb.shape == (12, 16, 3)


@pytest.mark.parametrize("source_storage,output_storage", [("sqlite3", "mcap"), ("mcap", "sqlite3")])
def test_storage_conversion_keeps_messages_definitions_and_qos(tmp_path, source_storage, output_storage):
    bag = Bag(camera_specs() + extra_specs(with_hashes=True), camera_messages(3) + extras(), storage=source_storage)
    source = build_bag(tmp_path / "in", bag)
    augment(tmp_path, source, engine_factory=warp_only, storage=output_storage)
    before, after = read_bag(source), read_bag(tmp_path / "out")
    assert after.metadata["storage_identifier"] == output_storage
    assert sorted(m for m in after.messages if m[0] in before.topics) == sorted(before.messages)
    assert {d[2] for d in before.definitions} <= {d[2] for d in after.definitions}  # every definition text, verbatim
    for spec in bag.specs:
        stored = after.topics[spec.name]
        if output_storage == "mcap":
            qos, digest = stored["metadata"]["offered_qos_profiles"], stored["metadata"].get("topic_type_hash", "")
        else:
            qos, digest = stored["offered_qos_profiles"], stored["type_description_hash"]
        assert (stored["type"], qos, digest) == (spec.type, spec.qos, spec.type_hash)


def test_split_bag_keeps_its_files_and_their_messages(tmp_path):
    bag = Bag(camera_specs(), camera_messages(FRAMES), files=3, storage="mcap")
    source = build_bag(tmp_path / "in", bag)
    augment(tmp_path, source, engine_factory=warp_only)
    out = tmp_path / "out"
    names = read_bag(out).metadata["relative_file_paths"]
    assert names == [f"out_{i}.mcap" for i in range(3)]
    for index, name in enumerate(names):  # each input file's messages land in the output file of the same index
        single = read_bag(source).metadata["relative_file_paths"][index]
        part_in, part_out = Contents({}, [], {}, [], [], [], 1), Contents({}, [], {}, [], [], [], 1)
        read_mcap_data((source / single).read_bytes(), part_in)
        read_mcap_data((out / name).read_bytes(), part_out)
        assert sorted(m for m in part_out.messages if m[0] in part_in.topics) == sorted(part_in.messages)
