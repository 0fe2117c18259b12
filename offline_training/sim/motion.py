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
