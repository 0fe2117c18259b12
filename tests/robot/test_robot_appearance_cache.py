"""The robot's fitted appearance kept between frames (`model.robot.appearance.AppearanceCache`): when it refits, and
that a composition with the cache colours the far side from the kept fit until the next refit."""

import numpy as np
import pytest

from model.robot import RobotModel
from model.robot.appearance import Appearance, AppearanceCache
from model.robot.compose import compose_robot_view

H, W = 120, 160
K = np.array([[150.0, 0, 79.5], [0, 150.0, 59.5], [0, 0, 1]])
BOX = """<robot name="box"><link name="base"><visual><origin xyz="0 0 1.5"/><geometry><box size="0.4 0.3 0.2"/>
</geometry></visual></link></robot>"""  # the root frame is the source camera's optical frame: the box 1.4-1.6 m ahead


def appearance_of(num_parts):
    return Appearance(np.zeros((3, num_parts, 3)), np.ones((3, num_parts), bool), np.zeros((9, 3)))


def test_the_kept_fit_serves_until_refit_every_frames_have_passed():
    cache = AppearanceCache(refit_every=3)
    assert cache.lookup(4) is None  # nothing kept yet
    fitted = appearance_of(4)
    cache.store(fitted, 4)  # frame 0 fitted
    assert cache.lookup(4) is fitted  # frame 1
    assert cache.lookup(4) is fitted  # frame 2
    assert cache.lookup(4) is None  # frame 3: refit
    refitted = appearance_of(4)
    cache.store(refitted, 4)
    assert cache.lookup(4) is refitted
    assert cache.fits == 2


def test_a_kept_fit_never_serves_another_robot():
    cache = AppearanceCache(refit_every=10)
    cache.store(appearance_of(4), 4)
    assert cache.lookup(5) is None  # a new robot description with five material parts


def test_refit_every_must_be_positive():
    with pytest.raises(ValueError, match="refit_every"):
        AppearanceCache(refit_every=0)


def far_side_view(source_colour, seen_by_source=True, model_colours=True):
    """The box robot before a wall, its robot pixels painted ``source_colour`` in the source; a virtual camera 0.6 m
    to the right, turned back towards the box, sees the box's +x side, which the source sees edge-on (never seen:
    its colour is the fitted appearance's). Not ``seen_by_source``: the sensor measures a wall 3 m ahead everywhere,
    so no robot pixel is seen. ``model_colours``: the virtual render's rgb. Returns the composition's arguments."""
    rng = np.random.default_rng(0)
    robot = RobotModel.from_urdf_string(BOX)
    robot_src = robot.render({}, K, np.eye(4), H, W, with_colour=False)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    rgb[robot_src.mask] = source_colour
    depth = np.full((H, W), 3.0, np.float32)
    if seen_by_source:
        depth[robot_src.mask] = robot_src.depth[robot_src.mask]
    angle = np.deg2rad(-25)
    T_src_dst = np.eye(4)
    T_src_dst[:3, :3] = [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]]
    T_src_dst[:3, 3] = [0.6, 0, 0.15]
    T_dst_src = np.linalg.inv(T_src_dst)
    robot_dst = robot.render({}, K, T_dst_src, H, W, model_colours=model_colours)
    return (rgb, depth, K, K, T_dst_src, (H, W), robot_src, robot_dst, robot.part_link)


def test_composition_shades_the_far_side_with_the_kept_fit_until_the_refit():
    grey, red = far_side_view([120, 120, 120]), far_side_view([200, 40, 30])
    plain_grey, plain_red = compose_robot_view(*grey), compose_robot_view(*red)
    far = plain_red.robot & ~plain_red.robot_seen
    assert far.sum() > 50 and plain_red.robot_seen.sum() > 50
    # without a cache each frame is fitted on its own: the far side follows the source's colour
    assert np.abs(plain_red.rgb[far].astype(int) - plain_grey.rgb[far].astype(int)).mean() > 40

    cache = AppearanceCache(refit_every=2)
    first = compose_robot_view(*grey, appearance_cache=cache)
    np.testing.assert_array_equal(first.rgb, plain_grey.rgb)  # a fit, as without the cache
    kept = compose_robot_view(*red, appearance_cache=cache)
    # the seen surface takes this frame's source colour; the far side keeps the first frame's fit
    seen = kept.robot_seen
    np.testing.assert_array_equal(kept.rgb[seen], plain_red.rgb[seen])
    np.testing.assert_array_equal(kept.rgb[far], plain_grey.rgb[far])
    assert cache.fits == 1
    refitted = compose_robot_view(*red, appearance_cache=cache)
    np.testing.assert_array_equal(refitted.rgb, plain_red.rgb)
    assert cache.fits == 2


def test_a_frame_that_sees_too_little_to_fit_keeps_the_last_fit_not_the_model_colours():
    cache = AppearanceCache(refit_every=1)  # every frame is due for a refit
    fitted = compose_robot_view(*far_side_view([120, 120, 120]), appearance_cache=cache)
    far = fitted.robot & ~fitted.robot_seen
    # the next frame sees none of the robot; its virtual render has no model colours (the robot layer leaves them
    # out once a fit is kept)
    blind = compose_robot_view(*far_side_view([200, 40, 30], False, model_colours=False), appearance_cache=cache)
    assert not blind.robot_seen.any() and np.array_equal(blind.robot, fitted.robot)
    np.testing.assert_array_equal(blind.rgb[far], fitted.rgb[far])
    assert cache.fits == 1
    with pytest.raises(ValueError, match="model_colours"):  # nothing seen, nothing kept, no model colours
        compose_robot_view(*far_side_view([200, 40, 30], False, model_colours=False))


def test_a_new_robot_model_does_not_inherit_the_last_ones_fit():
    from embody4d_ros.robot_layer import RobotLayer, RobotLayerConfig

    layer = RobotLayer(RobotLayerConfig(enable="true", scene_memory=False))
    box = RobotModel.from_urdf_string(BOX)
    layer.set_model(box)
    layer.appearance.store(appearance_of(len(box.part_link)), len(box.part_link))
    assert layer.appearance.latest(len(box.part_link)) is not None
    layer.set_model(RobotModel.from_urdf_string(BOX.replace("0.4 0.3 0.2", "0.2 0.2 0.2")))  # as many parts
    assert layer.appearance.latest(len(box.part_link)) is None
