"""The demo's bag holds what a robot publishes, read back with sqlite3 and rosbags' deserialiser (not our reader):
`/robot_description` and `/tf_static` latched (transient local, keep last 1), `/joint_states` at 50 Hz out of phase
with the camera, everything stored in time order, and the TF chain from the URDF's root link to the optical frame."""

import sqlite3

import numpy as np
import yaml
from scipy.spatial.transform import Rotation

from embody4d_ros.bag_io import typestore, write_rgbd_bag
from embody4d_ros.demo import RobotRecording

T, H, W = 4, 24, 32
K = np.array([[30.0, 0, 15.5], [0, 30.0, 11.5], [0, 0, 1]])
STAMPS = [1_700_000_000_000_000_000 + i * 33_333_333 for i in range(T)]
OPTICAL = "camera_color_optical_frame"
# the optical frame 1.2 m in front of the root, turned to look back at it
T_ROOT_CAMERA = np.eye(4)
T_ROOT_CAMERA[:3, :3] = Rotation.from_euler("xyz", [-100, 5, 80], degrees=True).as_matrix()
T_ROOT_CAMERA[:3, 3] = [1.2, -0.3, 0.6]


def matrix(transform) -> np.ndarray:
    t, q = transform.translation, transform.rotation
    out = np.eye(4)
    out[:3, :3] = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
    out[:3, 3] = [t.x, t.y, t.z]
    return out


def test_demo_bag_records_the_robot_topics_as_a_robot_publishes_them(tmp_path):
    positions = np.stack([np.linspace(0.0, 0.3, T), np.linspace(1.0, 0.4, T)], axis=1)
    recording = RobotRecording("<robot name='r'/>", "", "panda_link0", ["j1", "j2"], positions, T_ROOT_CAMERA)
    rgb = np.zeros((T, H, W, 3), np.uint8)
    path = write_rgbd_bag(
        tmp_path / "bag", rgb, np.ones((T, H, W), np.float32), K, STAMPS, others=recording.topics(STAMPS, OPTICAL)
    )
    with sqlite3.connect(next(path.glob("*.db3"))) as db:
        topics = {
            name: (type_name, yaml.safe_load(qos))
            for name, type_name, qos in db.execute("SELECT name, type, offered_qos_profiles FROM topics")
        }
        rows = db.execute(
            "SELECT topics.name, messages.timestamp, messages.data FROM messages JOIN topics "
            "ON messages.topic_id = topics.id ORDER BY messages.id"
        ).fetchall()
    assert topics["/robot_description"][0] == "std_msgs/msg/String"
    assert topics["/tf_static"][0] == "tf2_msgs/msg/TFMessage"
    assert topics["/joint_states"][0] == "sensor_msgs/msg/JointState"
    for latched in ("/robot_description", "/tf_static"):
        (qos,) = topics[latched][1]
        assert (qos["durability"], qos["history"], qos["depth"]) == (1, 1, 1), latched  # transient local, last 1
    times = [time for _, time, _ in rows]
    assert times == sorted(times)  # stored in time order, as a recorder receives them
    store = typestore()
    by_topic: dict[str, list] = {}
    for name, time, data in rows:
        type_name = topics[name][0]
        by_topic.setdefault(name, []).append((time, store.deserialize_cdr(data, type_name)))

    (_, description), *_ = by_topic["/robot_description"]
    assert description.data == "<robot name='r'/>" and times.index(by_topic["/robot_description"][0][0]) == 0

    joint_times = np.array([time for time, _ in by_topic["/joint_states"]])
    assert np.allclose(np.diff(joint_times), 20_000_000)  # 50 Hz
    assert not set(joint_times) & set(STAMPS) and joint_times[0] < STAMPS[0] and joint_times[-1] > STAMPS[-1]
    stamps = [msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec for _, msg in by_topic["/joint_states"]]
    assert stamps == list(joint_times)
    values = np.array([msg.position for _, msg in by_topic["/joint_states"]])
    assert all(list(msg.name) == ["j1", "j2"] for _, msg in by_topic["/joint_states"])
    for joint in range(2):  # each message: the pose of the motion through the frames' poses at its own stamp
        truth = np.interp(joint_times, STAMPS, positions[:, joint])
        np.testing.assert_allclose(values[:, joint], truth, atol=1e-9)

    transforms = {
        (tf.header.frame_id, tf.child_frame_id): matrix(tf.transform)
        for _, msg in by_topic["/tf_static"]
        for tf in msg.transforms
    }
    assert set(transforms) == {("panda_link0", "camera_link"), ("camera_link", OPTICAL)}
    chain = transforms[("panda_link0", "camera_link")] @ transforms[("camera_link", OPTICAL)]
    np.testing.assert_allclose(chain, T_ROOT_CAMERA, atol=1e-9)
