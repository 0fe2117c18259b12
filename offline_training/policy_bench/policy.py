"""The behaviour-cloning policy: a small CNN with a spatial soft-argmax reads the image (only the image says where the
red cube is), an MLP combines its keypoints with the end-effector position (proprioception, base frame, as robot
policies get it), trained by regression on the expert's base-frame displacements; and its closed-loop evaluation
from a moved camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from offline_training.policy_bench.task import ReachTask, StartState, camera_pose, clip_action


class ReachPolicy(nn.Module):
    """(B, 3, s, s) uint8-range images and (B, 3) end-effector positions (m) -> (B, 3) displacements in units of
    max_step_m."""

    def __init__(self, keypoints: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(5, 16, 5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, keypoints, 1),
        )
        self.head = nn.Sequential(
            nn.Linear(2 * keypoints + 3, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 3)
        )

    def forward(self, images: torch.Tensor, ee: torch.Tensor) -> torch.Tensor:
        x = images.float() / 127.5 - 1.0
        b, _, h, w = x.shape
        # pixel coordinates as two extra channels (CoordConv): the soft-argmax then reads positions directly
        ys = torch.linspace(-1, 1, h).view(1, 1, h, 1).expand(b, 1, h, w)
        xs = torch.linspace(-1, 1, w).view(1, 1, 1, w).expand(b, 1, h, w)
        maps = self.features(torch.cat([x, xs, ys], dim=1))
        attention = F.softmax(maps.flatten(2), dim=-1).view_as(maps)
        grid_y = torch.linspace(-1, 1, maps.shape[2]).view(1, 1, -1, 1)
        grid_x = torch.linspace(-1, 1, maps.shape[3]).view(1, 1, 1, -1)
        keypoints = torch.cat([(attention * grid_x).sum((2, 3)), (attention * grid_y).sum((2, 3))], dim=1)
        # the workspace's centre and size: the end-effector position enters roughly in [-1, 1]
        ee = (ee.float() - torch.tensor([0.5, 0.0, 0.15])) / 0.25
        return self.head(torch.cat([keypoints, ee], dim=1))


@dataclass(frozen=True)
class TrainConfig:
    """The same for every variant: iterations, batch size, learning rate (Adam, cosine decay)."""

    iterations: int = 1000
    batch_size: int = 64
    learning_rate: float = 3e-3


def train_policy(
    images: np.ndarray,
    ee: np.ndarray,
    actions: np.ndarray,
    max_step_m: float,
    seed: int,
    config: TrainConfig,
    desc: str = "train",
    position: int = 0,
) -> tuple[ReachPolicy, float]:
    """Behaviour cloning: MSE between the policy's output and the expert displacement / max_step_m.

    Args:
        images: (N, s, s, 3) uint8 training images (original and extra views alike). ee: (N, 3) end-effector
            positions, actions: (N, 3) expert displacements, metres in the base frame.
        seed: network initialisation and minibatch order.
        position: line of the progress bar (one per worker process).
    Returns:
        the policy (eval mode) and its mean training loss over the last 10 % of the iterations.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    # channels-last: the images' own (N, H, W, C) layout, and ~25 % less CPU per iteration in oneDNN's convolutions
    policy = ReachPolicy().to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs lack it
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.iterations)
    inputs = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    positions = torch.from_numpy(ee.astype(np.float32))
    targets = torch.from_numpy((actions / max_step_m).astype(np.float32))
    losses = []
    for _ in tqdm(range(config.iterations), desc=desc, unit="it", leave=False, position=position):
        batch = torch.from_numpy(rng.integers(0, len(inputs), config.batch_size))
        loss = F.mse_loss(policy(inputs[batch], positions[batch]), targets[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return policy.eval(), float(np.mean(losses[-max(1, config.iterations // 10) :]))


@torch.inference_mode()
def evaluate_policy(
    task: ReachTask,
    policy: ReachPolicy,
    states: list[StartState],
    offsets: list[tuple[float, float]],
    desc: str = "evaluate",
    position: int = 0,
) -> np.ndarray:
    """Closed-loop success of `policy` from every start state with the camera orbited by each (yaw, pitch) offset.

    All episodes run side by side (one batched policy call per step); an episode ends when the end effector is
    within success_radius_m of the goal (success) or after max_steps (failure). position: the progress bar's line.
    Returns: (len(offsets), len(states)) bool.
    """
    config = task.config
    episodes = [(o, s) for o in range(len(offsets)) for s in range(len(states))]
    cameras = [camera_pose(config, *offset) for offset in offsets]
    datas = [task.reset(states[s]) for _, s in episodes]
    success = np.zeros(len(episodes), bool)
    active = np.arange(len(episodes))
    with tqdm(total=config.max_steps, desc=desc, unit="step", leave=False, position=position) as bar:
        for _ in range(config.max_steps):
            images = np.stack([task.observe(datas[i], cameras[episodes[i][0]]) for i in active])
            ee = torch.from_numpy(np.stack([task.ee_position(datas[i]) for i in active]))
            actions = policy(torch.from_numpy(images).permute(0, 3, 1, 2), ee).numpy() * config.max_step_m
            actions = clip_action(actions.astype(np.float64), config.max_step_m)
            for i, action in zip(active, actions):
                reached = task.step(datas[i], action)
                success[i] = np.linalg.norm(reached - states[episodes[i][1]].goal) < config.success_radius_m
            active = active[~success[active]]
            bar.update()
            if len(active) == 0:
                break
    return success.reshape(len(offsets), len(states))
