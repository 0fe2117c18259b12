"""Every bad input ends with exit code 2 and one line naming the file and what is wrong; nothing is left behind."""

import shutil

import pytest
import yaml
from bag_fixtures import COLOR, DEPTH, INFO, Bag, Spec, build_bag, camera_messages, camera_specs

from embody4d_ros.cli import main as cli_main


def good(tmp_path, **options):
    return build_bag(tmp_path / "in", Bag(camera_specs(), camera_messages(6), **options))


def edit_metadata(bag, edit):
    path = bag / "metadata.yaml"
    document = yaml.safe_load(path.read_text())
    edit(document["rosbag2_bagfile_information"])
    path.write_text(yaml.safe_dump(document))
    return path


def storage_file(bag):
    return next(p for p in bag.iterdir() if p.name != "metadata.yaml")


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def scribble(path, offset_fraction=0.5, length=600):
    data = bytearray(path.read_bytes())
    start = int(len(data) * offset_fraction)
    data[start : start + length] = b"\xa5" * min(length, len(data) - start)
    path.write_bytes(bytes(data))
    return path


def retype(topic, new_type):
    """The camera topics with one of them recorded under another message type."""
    return [Spec(s.name, new_type) if s.name == topic else s for s in camera_specs()]


def case_truncated_db3(tmp_path):
    return good(tmp_path), lambda bag: truncate(storage_file(bag), 0.4)


def case_truncated_mcap(tmp_path):
    return good(tmp_path, storage="mcap"), lambda bag: truncate(storage_file(bag), 0.6)


def case_corrupt_db3_pages(tmp_path):
    return good(tmp_path), lambda bag: scribble(storage_file(bag), 0.3, 3000)


def case_corrupt_mcap_chunk(tmp_path):
    return good(tmp_path, storage="mcap"), lambda bag: scribble(storage_file(bag), 0.3, 200)


def case_truncated_zstd_file(tmp_path):
    return good(tmp_path, compression="file"), lambda bag: truncate(storage_file(bag), 0.7)


def case_truncated_zstd_mcap(tmp_path):
    return good(tmp_path, storage="mcap", compression="file"), lambda bag: truncate(storage_file(bag), 0.9)


def replace_metadata(content):
    def damage(bag):
        path = bag / "metadata.yaml"
        path.write_bytes(content)
        return path

    return damage


def case_binary_metadata(tmp_path):
    return good(tmp_path), replace_metadata(bytes(range(256)) * 4)


def case_empty_metadata(tmp_path):
    return good(tmp_path), replace_metadata(b"")


def case_list_metadata(tmp_path):
    return good(tmp_path), replace_metadata(b"- a\n- b\n")


def case_invalid_yaml(tmp_path):
    return good(tmp_path), replace_metadata(b"rosbag2_bagfile_information: {version: [\n")


def case_missing_keys(tmp_path):
    return good(tmp_path), lambda bag: edit_metadata(bag, lambda info: info.pop("storage_identifier"))


def case_version_10(tmp_path):
    return good(tmp_path), lambda bag: edit_metadata(bag, lambda info: info.update(version=10))


def case_lz4(tmp_path):
    return good(tmp_path), lambda bag: edit_metadata(
        bag, lambda info: info.update(compression_format="lz4", compression_mode="FILE")
    )


def case_missing_file(tmp_path):
    return good(tmp_path), lambda bag: edit_metadata(bag, lambda info: info["relative_file_paths"].append("in_1.db3"))


def case_no_metadata(tmp_path):
    return good(tmp_path), lambda bag: ((bag / "metadata.yaml").unlink(), bag)[1]


def case_a_file_not_a_directory(tmp_path):
    return good(tmp_path), lambda bag: storage_file(bag)


def case_non_cdr(tmp_path):
    specs = [Spec(s.name, s.type, s.definition, serialization_format="json") for s in camera_specs()]
    return build_bag(tmp_path / "in", Bag(specs, camera_messages(3))), None


def case_colour_wrong_type(tmp_path):
    return build_bag(tmp_path / "in", Bag(retype(COLOR, "std_msgs/msg/String"), camera_messages(3))), None


def case_depth_wrong_type(tmp_path):
    return build_bag(tmp_path / "in", Bag(retype(DEPTH, "sensor_msgs/msg/CompressedImage"), camera_messages(3))), None


def case_camera_info_wrong_type(tmp_path):
    return build_bag(tmp_path / "in", Bag(retype(INFO, "sensor_msgs/msg/Image"), camera_messages(3))), None


def case_no_colour_topic(tmp_path):
    specs = [s for s in camera_specs() if s.name != COLOR]
    return build_bag(tmp_path / "in", Bag(specs, [m for m in camera_messages(3) if m[0] != COLOR])), None


def case_no_camera_info_topic(tmp_path):
    specs = [s for s in camera_specs() if s.name != INFO]
    return build_bag(tmp_path / "in", Bag(specs, [m for m in camera_messages(3) if m[0] != INFO])), None


def case_unwritable_output_parent(tmp_path):
    return good(tmp_path), None


CASES = {name[len("case_") :]: fn for name, fn in dict(globals()).items() if name.startswith("case_")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_exit_2(tmp_path, case, capsys):
    bag, damage = CASES[case](tmp_path)
    named = damage(bag) if damage else bag
    parent = tmp_path
    if case == "unwritable_output_parent":
        (tmp_path / "a_file").write_text("not a directory")
        parent = named = tmp_path / "a_file"
    source = named if case == "a_file_not_a_directory" else bag
    code = cli_main(["augment-bag", str(source), str(parent / "out"), "--param", "target.mode=pose"])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if not line.startswith("augment in:")]  # progress bar
    assert len(lines) == 1 and lines[0].startswith("embody4d augment-bag: error: "), err
    assert "Traceback" not in err
    assert str(named) in lines[0] or named.name in lines[0], lines[0]
    if case.endswith("wrong_type") or case.startswith("no_") and case != "no_metadata":
        assert "image topics" in lines[0]
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".") or p.name == "out"]
    assert leftovers == []


def test_wrong_type_error_lists_the_image_topics(tmp_path, capsys):
    specs = retype(COLOR, "std_msgs/msg/String") + [Spec("/camera/camera/infra1/image_rect_raw", "sensor_msgs/Image")]
    bag = build_bag(tmp_path / "in", Bag(specs, camera_messages(2)))
    assert cli_main(["augment-bag", str(bag), str(tmp_path / "out")]) == 2
    line = capsys.readouterr().err.strip()
    assert "std_msgs/msg/String" in line and COLOR in line
    assert f"image topics: {DEPTH}, /camera/camera/infra1/image_rect_raw" in line


def test_missing_messages_in_output_fail_the_run(tmp_path, monkeypatch):
    """The per-topic count check catches a copy that lost messages, before anything is committed."""
    from embody4d_ros.augment_bag import augment_bag
    from embody4d_ros.bag import BagError, BagWriter
    from embody4d_ros.params import resolve

    bag = good(tmp_path)
    write = BagWriter.write

    def lossy(self, message, file_index=None):
        if message.topic.name == INFO and message.log_time % 2:
            return  # a reader or writer that silently skips some messages
        write(self, message, file_index)

    monkeypatch.setattr(BagWriter, "write", lossy)
    with pytest.raises(BagError, match=f"{INFO}: 6 expected, 3 written"):
        augment_bag(bag, tmp_path / "out", resolve(None, ["target.mode=pose"]), progress=False)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial-*"))
    shutil.rmtree(bag)
