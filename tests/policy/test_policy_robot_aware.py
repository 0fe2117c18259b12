"""The robot-aware variant of `embody4d bench-policy`, and what makes runs of different variants comparable.

The oracle's robot mask comes from MuJoCo's segmentation rendering of the task's own scene (the decimated meshes the
policy sees), the robot-aware view's from the robot layer drawing the library Panda's URDF: two implementations.
"""

import json
from dataclasses import replace

import mujoco
import numpy as np
import pytest

from embody4d_ros.cli import main
from model.engines import create_engine
from model.geometry import OrbitTarget
from model.virtual_view import prepare_virtual_view, render_virtual_view
from offline_training.policy_bench import benchmark
from offline_training.policy_bench.benchmark import BenchConfig, merge_results, run_benchmark
from offline_training.policy_bench.task import ROBOT_PREFIX, ReachTask, camera_pose, orbit_pose
from offline_training.policy_bench.views import VIEW_SOURCES, RobotAwareViews, collect_demonstrations


@pytest.fixture(scope="module")
def task():
    task = ReachTask()
    yield task
    task.close()


def robot_masks(task: ReachTask, qposes: np.ndarray, T_world_cam: np.ndarray) -> np.ndarray:
    """(T, S, S) bool: pixels whose nearest surface is a robot geom, by MuJoCo's segmentation rendering."""
    model, size = task.model, task.config.render_size
    robot_geoms = np.array([model.body(model.geom_bodyid[g]).name.startswith(ROBOT_PREFIX) for g in range(model.ngeom)])
    camera = mujoco.MjvCamera()
    camera.type, camera.fixedcamid = mujoco.mjtCamera.mjCAMERA_FIXED, model.camera("view").id
    data, masks = mujoco.MjData(model), []
    with mujoco.Renderer(model, size, size) as renderer:
        renderer.enable_segmentation_rendering()
        for qpos in qposes:
            data.qpos[:] = qpos
            mujoco.mj_kinematics(model, data)
            data.cam_xpos[0] = T_world_cam[:3, 3]
            # optical (x right, y down, z forward) -> MuJoCo camera (looks down -z, y up)
            data.cam_xmat[0] = (T_world_cam[:3, :3] @ np.diag([1.0, -1.0, -1.0])).ravel()
            renderer.update_scene(data, camera)
            ids, types = np.moveaxis(renderer.render(), -1, 0)
            geom = (types == mujoco.mjtObj.mjOBJ_GEOM) & (ids >= 0)
            mask = np.zeros(ids.shape, bool)
            mask[geom] = robot_geoms[ids[geom]]
            masks.append(mask)
    return np.stack(masks)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def region_psnr(images: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    error = (images.astype(np.float64) - reference.astype(np.float64))[mask]
    return float(10 * np.log10(255.0**2 / np.mean(error**2)))


@pytest.mark.slow
def test_robot_aware_views_put_the_arm_where_the_oracle_has_it(task):
    demos = collect_demonstrations(task, 1, seed=4)
    source_masks = robot_masks(task, demos.qpos[0], camera_pose(task.config))
    robot_aware = VIEW_SOURCES["robot-aware"]
    assert isinstance(robot_aware, RobotAwareViews)
    plain_engine = create_engine(robot_aware.engine, **robot_aware.options)  # the same engine without the layer
    for target in (OrbitTarget(yaw_deg=25.0, pitch_deg=10.0), OrbitTarget(yaw_deg=-20.0, forward_m=0.1)):
        target = OrbitTarget(target.yaw_deg, target.pitch_deg, target.forward_m, pivot_m=task.config.pivot_m)
        T_world_dst = orbit_pose(camera_pose(task.config), target)
        oracle_masks = robot_masks(task, demos.qpos[0], T_world_dst)
        data = task.new_data()
        oracle = []
        for qpos in demos.qpos[0]:
            task.set_qpos(data, qpos)
            oracle.append(task.render(data, T_world_dst)[0])
        oracle = np.stack(oracle)

        frames, views = robot_aware.render(task, demos, 0, target)
        drawn = np.stack([view.request.target_interaction[0] > 0 for view in views])
        # the plain warp's arm: the source's robot pixels carried by the same warp
        mask_rgb = np.repeat(source_masks[..., None], 3, axis=-1).astype(np.uint8) * 255
        warped = prepare_virtual_view(mask_rgb, demos.depth[0], task.K_render, target).request
        carried = (warped.warped_rgb[..., 0] > 127) & warped.warp_mask
        ious = [iou(d, o) for d, o in zip(drawn, oracle_masks)]
        plain_ious = [iou(c, o) for c, o in zip(carried, oracle_masks)]
        assert min(ious) > 0.8 and np.mean(ious) > np.mean(plain_ious) + 0.1, (ious, plain_ious)

        # the images themselves on the oracle's arm, and most of all where the plain warp lost it (its far side)
        plain_frames, _ = render_virtual_view(plain_engine, demos.rgb[0], demos.depth[0], task.K_render, target)
        lost = oracle_masks & ~carried
        arm_db = [region_psnr(f, oracle, oracle_masks) for f in (frames, plain_frames)]
        lost_db = [region_psnr(f, oracle, lost) for f in (frames, plain_frames)]
        assert arm_db[0] > arm_db[1] + 0.5 and lost_db[0] > lost_db[1] + 2.0, (arm_db, lost_db)


def test_rows_of_runs_with_other_variants_see_the_same_demonstrations_and_start_states(monkeypatch):
    """A variant's training data and evaluation start states depend on the seed alone, not on which variants run
    beside it: what lets `--merge` put the rows of two runs in one table."""
    calls: dict[str, tuple] = {}

    def record_training(images, ee, actions, max_step_m, seed, config, desc, position):
        calls[desc] = (images.copy(), ee.copy(), actions.copy(), seed)
        return None, 0.0

    def record_evaluation(task, policy, states, offsets, desc, position):
        calls[desc] = (np.stack([s.cubes for s in states]), np.stack([s.ee_start for s in states]), np.array(offsets))
        return np.zeros((len(offsets), len(states)), bool)

    monkeypatch.setattr(benchmark, "train_policy", record_training)
    monkeypatch.setattr(benchmark, "evaluate_policy", record_evaluation)
    config = BenchConfig(demos=2, views_per_demo=1, episodes=3, seeds=2, yaw_deg=(0, 20), pitch_deg=())
    run_benchmark(replace(config, variants=("warp-raw",)))
    alone = dict(calls)
    calls.clear()
    run_benchmark(replace(config, variants=("original", "oracle", "warp-raw")))
    assert sorted(alone) == [f"{stage} warp-raw s{s}" for stage in ("evaluate", "train") for s in (0, 1)]
    for desc, arrays in alone.items():
        for first, again in zip(arrays, calls[desc]):
            np.testing.assert_array_equal(first, again)
    # the extra views are really in the training data (2 demonstrations x 12 frames, once more from a viewpoint)
    original, with_views = calls["train original s0"][0], alone["train warp-raw s0"][0]
    assert len(with_views) == 2 * len(original) and np.array_equal(with_views[: len(original)], original)


def results(variants: dict[str, list[list[float]]], psnr: dict[str, float], seed: int = 0) -> dict:
    """A results.json as run_benchmark writes it (two offsets)."""
    seeds = len(next(iter(variants.values())))
    return {
        "config": {"demos": 4, "episodes": 2, "seed": seed, "seeds": seeds, "variants": list(variants)},
        "task": {"image_size": 64},
        "offsets": [[0.0, 0.0], [30.0, 0.0]],
        "success": variants,
        "view_psnr_db": psnr,
        "expert_success": 1.0,
        "stage_seconds": {},
        "wall_seconds": 10.0,
        "cpu_seconds": 8.0,
        "load_average": {"start": [1.0, 1.0, 1.0], "end": [1.0, 1.0, 1.0]},
    }


def test_merge_puts_runs_of_other_variants_in_one_table(tmp_path, capsys):
    full = results({"original": [[1.0, 0.5], [1.0, 0.0]], "oracle": [[1.0, 1.0], [1.0, 0.5]]}, {})
    robot = results({"robot-aware": [[1.0, 0.75], [1.0, 0.25], [0.5, 0.0]]}, {"robot-aware": 27.5})
    for name, run in (("full", full), ("robot", robot)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(run))
    out = tmp_path / "merged"
    assert main(["bench-policy", "--merge", str(tmp_path / "full"), str(tmp_path / "robot"), "--out", str(out)]) == 0
    table = (out / "table.md").read_text().splitlines()
    assert table[2:] == [
        "| original | 2 | — | 1.00 ± 0.00 | 0.25 ± 0.25 |",
        "| oracle | 2 | — | 1.00 ± 0.00 | 0.75 ± 0.25 |",
        "| robot-aware | 3 | 27.5 | 0.83 ± 0.24 | 0.33 ± 0.31 |",
    ]
    merged = json.loads((out / "results.json").read_text())
    assert merged["config"]["variants"] == ["original", "oracle", "robot-aware"] and merged["config"]["seeds"] == 3
    assert merged["runs"][str(tmp_path / "robot")]["cpu_seconds"] == 8.0 and (out / "success.png").is_file()
    assert "| robot-aware |" in capsys.readouterr().out


def test_merge_refuses_runs_that_are_not_comparable(tmp_path, capsys):
    one = results({"original": [[1.0, 0.5]]}, {})
    with pytest.raises(ValueError, match="differ in their config"):
        merge_results({"a": one, "b": results({"warp-raw": [[1.0, 0.5]]}, {}, seed=1)})
    with pytest.raises(ValueError, match=r"\['original'\] of b are in another run"):
        merge_results({"a": one, "b": results({"original": [[1.0, 0.5]]}, {})})
    assert main(["bench-policy", "--merge", str(tmp_path / "nothing"), "--out", str(tmp_path / "out")]) == 2
    assert "no results.json in" in capsys.readouterr().err and not (tmp_path / "out").exists()
