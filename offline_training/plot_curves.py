"""Plot training loss curves (train_log.csv of `embody4d train`) to a PNG.

python -m offline_training.plot_curves RUN_DIR_OR_CSV [...] --out curves.png
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Sequence
from pathlib import Path


def read_log(path: Path) -> tuple[list[int], list[float]]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [int(r["step"]) for r in rows], [float(r["loss"]) for r in rows]


def plot_curves(logs: Sequence[Path], out: Path, smooth: int = 10) -> Path:
    """One line per log (raw, faint) and its running mean over `smooth` steps; log-scale loss axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for path in logs:
        path = Path(path)
        csv_path = path / "train_log.csv" if path.is_dir() else path
        steps, losses = read_log(csv_path)
        label = csv_path.parent.name
        (line,) = ax.plot(steps, losses, alpha=0.3, linewidth=0.8)
        k = max(1, min(smooth, len(losses)))
        means = [
            sum(losses[max(0, i - k + 1) : i + 1]) / len(losses[max(0, i - k + 1) : i + 1]) for i in range(len(losses))
        ]
        ax.plot(steps, means, color=line.get_color(), label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if all(v > 0 for line in ax.get_lines() for v in line.get_ydata()):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", nargs="+", type=Path, help="run directories or train_log.csv files")
    parser.add_argument("--out", type=Path, default=Path("loss_curves.png"), help="output PNG")
    parser.add_argument("--smooth", type=int, default=10, help="running-mean window in steps")
    args = parser.parse_args(argv)
    print(plot_curves(args.logs, args.out, args.smooth))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
