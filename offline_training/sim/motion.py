"""Random smooth joint motion around a robot's default pose (the paper's foreground dynamics), played back
kinematically with physics for the loose objects."""

from __future__ import annotations

import mujoco
import numpy as np


def random_joint_motion(
    default: np.ndarray,
    ranges: np.ndarray,
    num_frames: int,
    rng: np.random.Generator,
    step_fraction: float = 0.01,
    max_offset_fraction: float = 0.2,
    smoothness: float = 0.9,
) -> np.ndarray:
    """A (T, J) joint trajectory that starts at ``default`` (J,) and wanders smoothly within ``ranges`` (J, 2).

    Each frame moves each joint by at most ``step_fraction`` of its range (the paper's 1/100 step); the direction
    is low-pass filtered noise (``smoothness`` is the filter's memory) so the motion has no jerks, and the offset
    from the default pose is kept within ``max_offset_fraction`` of the range, reflecting at that band and at the
    joint limits.
    """
    span = ranges[:, 1] - ranges[:, 0]
    lo = np.maximum(ranges[:, 0], default - max_offset_fraction * span)
    hi = np.minimum(ranges[:, 1], default + max_offset_fraction * span)
    q = np.empty((num_frames, len(default)))
    q[0] = default
    velocity = rng.uniform(-1, 1, len(default))
    for t in range(1, num_frames):
        velocity = smoothness * velocity + (1 - smoothness) * rng.uniform(-1, 1, len(default))
        velocity = np.clip(velocity, -1, 1)
        nxt = q[t - 1] + velocity * step_fraction * span
        bounce = (nxt < lo) | (nxt > hi)
        velocity[bounce] *= -1  # turn back at the band edge instead of sticking to it
        q[t] = np.clip(np.where(bounce, q[t - 1] + velocity * step_fraction * span, nxt), lo, hi)
    return q


def play_motion(
    model: mujoco.MjModel, data: mujoco.MjData, qpos_adr: np.ndarray, trajectory: np.ndarray, fps: float
) -> np.ndarray:
    """Play a robot joint ``trajectory`` (T, J) kinematically while physics moves everything else (loose objects
    pushed by the robot, falling, settling).

    Between frames the robot joints (qpos addresses ``qpos_adr``) are interpolated linearly and imposed, with the
    matching velocities, before every physics step. Returns the full state per frame (T, nq), frame 0 = the initial
    state with the robot at ``trajectory[0]``.
    """
    dof_of_qpos = {int(model.jnt_qposadr[j]): int(model.jnt_dofadr[j]) for j in range(model.njnt)}
    dof_adr = np.array([dof_of_qpos[int(a)] for a in qpos_adr], dtype=int)  # 1-DoF joints: one dof per qpos
    substeps = max(1, int(round(1.0 / (fps * model.opt.timestep))))
    data.qpos[qpos_adr] = trajectory[0]
    data.qvel[:] = 0
    mujoco.mj_forward(model, data)
    states = np.empty((len(trajectory), model.nq))
    states[0] = data.qpos
    for t in range(1, len(trajectory)):
        velocity = (trajectory[t] - trajectory[t - 1]) * fps
        for k in range(1, substeps + 1):
            data.qpos[qpos_adr] = trajectory[t - 1] + (trajectory[t] - trajectory[t - 1]) * (k / substeps)
            data.qvel[dof_adr] = velocity
            mujoco.mj_step(model, data)
        data.qpos[qpos_adr] = trajectory[t]
        states[t] = data.qpos
    return states


def couple_joints(model: mujoco.MjModel, qpos_adr: np.ndarray, trajectory: np.ndarray) -> np.ndarray:
    """The robot ``trajectory`` (T, J) over qpos addresses ``qpos_adr`` with every active joint-equality follower
    (how MuJoCo imports a URDF's ``<mimic>``: the Panda's second finger, the xArm gripper's knuckles) set from its
    leader: ``y - y0 = c0 + c1 (x - x0) + ... + c4 (x - x0)^4`` with ``y0, x0`` the joints' qpos0. Drawing followers
    independently would pose the robot in a way its own description (and a robot model built from it) cannot."""
    column = {int(address): i for i, address in enumerate(qpos_adr)}
    coupled = np.array(trajectory, dtype=float, copy=True)
    for e in range(model.neq):
        if int(model.eq_type[e]) != int(mujoco.mjtEq.mjEQ_JOINT) or not model.eq_active0[e]:
            continue
        follower_adr = int(model.jnt_qposadr[model.eq_obj1id[e]])
        if follower_adr not in column:
            continue
        c = model.eq_data[e, :5]
        leader = int(model.eq_obj2id[e])
        if leader < 0:  # a joint held at a constant
            x = np.zeros(len(coupled))
        else:
            leader_adr = int(model.jnt_qposadr[leader])
            if leader_adr not in column:
                continue
            x = coupled[:, column[leader_adr]] - model.qpos0[leader_adr]
        y = c[0] + c[1] * x + c[2] * x**2 + c[3] * x**3 + c[4] * x**4
        coupled[:, column[follower_adr]] = model.qpos0[follower_adr] + y
    return coupled
