"""Random smooth joint motion around a robot's default pose (the paper's foreground dynamics)."""
from __future__ import annotations

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
