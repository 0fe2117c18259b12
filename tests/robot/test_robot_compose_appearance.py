"""The appearance of the robot's unseen surface (`model.robot.appearance`): moments against numpy, and on a synthetic
robot lit like the data engine's scenes (ambient plus three clamped directional lights, a colour per part), the
albedo x second-order-harmonic irradiance fitted on the normals facing the source must colour the normals it never
saw better than the additive model linear in the normal that it replaced."""

import numpy as np

from model.robot.appearance import NUM_TERMS, fit_appearance, harmonic_moments, shade_unseen


def harmonic_terms(normal):
    """The nine second-order spherical-harmonic polynomials (constant factors dropped), written out in numpy."""
    x, y, z = normal[..., 0], normal[..., 1], normal[..., 2]
    return np.stack([np.ones_like(x), x, y, z, x * y, y * z, x * z, x * x - y * y, 3 * z * z - 1], axis=-1)


def lit_robot(seed, size=96, num_parts=6, albedo=None, box=False):
    """Unit normals (size, size, 3) in the source camera's frame, a part per pixel, and the colour a diffuse surface
    gets in the data engine's scenes (`offline_training.sim.scene`): ambient light plus a key and two fill directional
    lights from 40-80 degrees above the horizon, clamped to 255 like OpenGL's. The camera looks at the robot from
    1.5 m away and 20 degrees above, as the data engine's source cameras do. ``albedo`` (num_parts, 3) in [0, 1]:
    the parts' colours (default random); ``box``: the normals are those of a box's six faces only."""
    rng = np.random.default_rng(seed)
    normal = rng.normal(size=(size, size, 3))
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    if box:
        normal = np.eye(3)[np.argmax(np.abs(normal), axis=-1)] * np.sign(normal)
    part = rng.integers(0, num_parts, (size, size)).astype(np.int32)
    albedo = rng.uniform(0.2, 1.0, (num_parts, 3)) if albedo is None else np.asarray(albedo)
    azimuth, elevation = rng.uniform(0, 2 * np.pi, 3), np.deg2rad(rng.uniform(40, 80, 3))
    towards_light = np.stack(
        [np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)], 1
    )
    # world (z up) -> camera (x right, y down, z forward) for a camera looking along +x, tilted 20 degrees down
    tilt = np.deg2rad(20)
    forward = np.array([np.cos(tilt), 0, -np.sin(tilt)])
    right = np.array([0.0, -1.0, 0.0])
    R_cam_world = np.stack([right, np.cross(forward, right), forward])
    towards_light = towards_light @ R_cam_world.T
    strengths = rng.uniform(0.5, 0.8) * np.array([1.0, rng.uniform(0.3, 0.5), rng.uniform(0.3, 0.5)])
    irradiance = rng.uniform(0.3, 0.5) + (np.clip(normal @ towards_light.T, 0, None) * strengths).sum(-1)
    colour = np.clip(255 * albedo[part] * irradiance[..., None], 0, 255)
    return normal.astype(np.float32), part, colour.astype(np.float32)


def additive_linear_fit(normal, part, colour, num_parts):
    """The model this one replaced: colour = base[part] + normal @ slope, ridge 1 (least squares written out)."""
    X = np.concatenate([np.eye(num_parts)[part], normal.astype(float)], axis=1)
    solution = np.linalg.solve(X.T @ X + np.eye(num_parts + 3), X.T @ colour.astype(float))
    return lambda n, p: solution[:num_parts][p] + n @ solution[num_parts:]


def fitted_colour(normal, part, colour, seen, part_link):
    size = normal.shape[0]
    num_parts = len(part_link)
    gram, rhs = np.zeros((num_parts, NUM_TERMS, NUM_TERMS)), np.zeros((num_parts, NUM_TERMS, 3))
    harmonic_moments(seen, colour, normal, part, 0, size, 0, size, gram, rhs)
    fitted = fit_appearance(gram, rhs, part_link)
    out = np.where(seen[..., None], colour, np.nan).astype(np.float32)
    mask = np.ones(seen.shape, bool)
    shade_unseen(
        mask, seen, normal, part, part_link, fitted.albedo, fitted.observed, fitted.irradiance, 0, size, 0, size, out
    )
    return out


def test_harmonic_moments_are_the_sums_of_terms_over_seen_pixels():
    # binned by normal direction (model.robot.appearance._NORMAL_BINS), so equal up to the spread of the normals
    # within a bin: within 2 % of the largest possible sum (a term is at most 2 in size, a colour 255); a bin mapping
    # that folds the two hemispheres together is off by 25 %, 4 bins a side instead of 16 by 7 %
    rng = np.random.default_rng(1)
    normal, part, colour = lit_robot(1, size=200, num_parts=4)  # ~20 pixels per part and bin
    seen = rng.random(part.shape) < 0.5
    gram, rhs = np.zeros((4, NUM_TERMS, NUM_TERMS)), np.zeros((4, NUM_TERMS, 3))
    harmonic_moments(seen, colour, normal, part, 0, 200, 0, 200, gram, rhs)
    harmonic_moments(seen, colour, normal, part, 5, 5, 0, 200, gram, rhs)  # an empty box adds nothing
    terms = harmonic_terms(normal.astype(float))
    for p in range(4):
        pixels = seen & (part == p)
        count = pixels.sum()
        expected_gram = terms[pixels].T @ terms[pixels]
        np.testing.assert_allclose(np.triu(gram[p]), np.triu(expected_gram), rtol=0, atol=0.02 * 4 * count)
        np.testing.assert_allclose(rhs[p], terms[pixels].T @ colour[pixels], rtol=0, atol=0.02 * 2 * 255 * count)


def test_unseen_side_of_a_clamped_multi_light_robot_beats_the_linear_model():
    errors = []
    for seed in range(5):
        normal, part, colour = lit_robot(seed)
        part_link = np.arange(part.max() + 1, dtype=np.int32)
        # the source sees normals facing it; a virtual camera up to 30 degrees around sees normals up to sin(30) away
        seen = normal[..., 2] < -0.2
        unseen = ~seen & (normal[..., 2] < 0.5)
        ours = fitted_colour(normal, part, colour, seen, part_link)
        linear = additive_linear_fit(normal[seen], part[seen], colour[seen], len(part_link))
        baseline = np.clip(linear(normal[unseen].astype(float), part[unseen]), 0, 255)
        assert np.array_equal(ours[seen], colour[seen])  # seen pixels keep their colour
        errors.append(
            (np.sqrt(np.mean((ours[unseen] - colour[unseen]) ** 2)), np.sqrt(np.mean((baseline - colour[unseen]) ** 2)))
        )
    ours_rmse, linear_rmse = np.array(errors).T
    assert np.all(ours_rmse < 0.7 * linear_rmse), errors
    assert ours_rmse.mean() < 0.55 * linear_rmse.mean(), errors


def test_a_part_never_seen_takes_its_links_albedo_under_the_fitted_light():
    # parts 0 and 1 on link 0 share a colour, part 2 on link 1 has another; the source never sees part 1
    normal, part, colour = lit_robot(7, num_parts=3, albedo=[[0.9, 0.5, 0.2], [0.9, 0.5, 0.2], [0.2, 0.4, 0.8]])
    facing = normal[..., 2] < -0.2
    seen = facing & (part != 1)
    hidden = facing & (part == 1)
    errors = {}
    for name, part_link in (("links", [0, 0, 1]), ("no links", [0, 1, 2])):
        ours = fitted_colour(normal, part, colour, seen, np.array(part_link, np.int32))
        errors[name] = np.sqrt(np.mean((ours[hidden] - colour[hidden]) ** 2))
    # with its link known, part 1 is coloured like part 0; without, it gets the whole robot's mean albedo
    assert errors["links"] < 0.05 * 255 and errors["no links"] > 3 * errors["links"], errors


def test_a_robot_the_source_never_saw_keeps_its_model_colours():
    from model.robot import RobotModel
    from model.robot.compose import compose_robot_view

    height, width = 60, 80
    K = np.array([[80.0, 0, 39.5], [0, 80.0, 29.5], [0, 0, 1]])
    robot = RobotModel.from_urdf_string(
        '<robot name="box"><link name="base"><visual><origin xyz="0 0 1.5"/><geometry><box size="0.4 0.3 0.2"/>'
        "</geometry></visual></link></robot>"
    )
    robot_src = robot.render({}, K, np.eye(4), height, width, with_colour=False)
    robot_dst = robot.render({}, K, np.eye(4), height, width)
    # the sensor measures a wall 3 m ahead everywhere: its depth never matches the robot's, so no pixel is seen
    depth = np.full((height, width), 3.0, np.float32)
    rgb = np.full((height, width, 3), 200, np.uint8)
    out = compose_robot_view(rgb, depth, K, K, np.eye(4), (height, width), robot_src, robot_dst, robot.part_link)
    assert np.array_equal(out.robot, robot_dst.mask) and out.robot.sum() > 100
    assert not out.robot_seen.any()
    assert np.array_equal(out.rgb[out.robot], robot_dst.rgb[out.robot])


def test_a_pure_red_box_robot_is_fitted_without_a_singular_system():
    # painted pure red, two colour channels are black everywhere; a box's faces leave directions no pixel constrains
    normal, part, colour = lit_robot(3, num_parts=2, albedo=[[0.9, 0.0, 0.0], [0.6, 0.0, 0.0]], box=True)
    seen = normal[..., 2] < 0
    ours = fitted_colour(normal, part, colour, seen, np.array([0, 0], np.int32))
    assert np.all(np.isfinite(ours)) and np.all(ours[..., 1:] == 0) and np.all(ours[..., 0] >= 0)
