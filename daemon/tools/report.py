"""The human-readable report: per-task accuracy, the accuracy matrix, transfer metrics,
wall time per task, self-training rounds; `report.json` and PNG plots (the third,
`self_training.png`, only where a task self-trained)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from synlearner.daemon.state import State
from synlearner.learner.methods import REGISTRY
from synlearner.stream.io import write_atomic


def build_report(state: State) -> dict[str, Any]:
    columns = [e.column for e in state.entries]
    tasks = []
    latest = state.latest_scores()
    for e in state.entries:
        tasks.append({
            "task": e.column, "version": e.version, "init_from": e.init_from,
            "zero_shot": e.zero_shot, "initial": e.initial, "final": e.final,
            "now": latest.get(e.column), "steps": e.steps, "train_examples": e.train_examples,
            "replay_examples": e.replay_examples,
            "seconds": round(sum(v for k, v in e.seconds.items() if not k.startswith("learner_")), 2),
            "seconds_by_phase": {k: round(v, 3) for k, v in e.seconds.items()},
            "extras": e.extras,
        })
    return {
        "columns": columns, "matrix": state.matrix, "tasks": tasks,
        "metrics": state.metrics().as_dict() if state.entries else {},
        "agnostic_matrix": state.agnostic, "answers": state.answers,
        "agnostic_metrics": agnostic.as_dict() if (agnostic := state.agnostic_metrics()) else {},
    }


def render_text(report: dict[str, Any]) -> str:
    lines = ["synlearner report", ""]
    head = (f"{'task':<24} {'init from':<22} {'zero-shot':>9} {'initial':>8} {'final':>7} "
            f"{'now':>7} {'secs':>7}")
    lines += [head, "-" * len(head)]
    for t in report["tasks"]:
        now = "" if t["now"] is None else f"{t['now']:.3f}"
        lines.append(
            f"{t['task'][:24]:<24} {(t['init_from'] or '-')[:22]:<22} {t['zero_shot']:>9.3f} "
            f"{t['initial']:>8.3f} {t['final']:>7.3f} {now:>7} {t['seconds']:>7.1f}"
        )
    cols = report["columns"]
    if cols:
        lines += ["", "accuracy matrix R[i][j] (row: after learning task i; column: task j)"]
        lines.append(" " * 4 + "".join(f"{j:>7}" for j in range(len(cols))))
        for i, row in enumerate(report["matrix"]):
            cells = "".join(f"{'' if v is None else f'{v:.3f}':>7}" for v in row)
            lines.append(f"{i:>3} {cells}   {cols[i]}")
        m = report["metrics"]
        lines += ["", f"ACC {m['acc']:.3f}   BWT {m['bwt']:+.3f}   FWT {m['fwt']:+.3f}   "
                      f"forgetting {m['forgetting']:.3f}   ({len(cols)} tasks, task-aware)"]
        a = report.get("agnostic_metrics") or {}
        if a:
            lines.append(f"ACC {a['acc']:.3f}   BWT {a['bwt']:+.3f}   FWT {a['fwt']:+.3f}   "
                         f"forgetting {a['forgetting']:.3f}   (task-agnostic: no task id)")
        for task_id, key in (report.get("answers") or {}).items():
            lines.append(f"{task_id} is answered by {key}'s adapter (better on its train data)")
    for method in REGISTRY.values():  # each learning method's own lines
        lines += method.report(report["tasks"])
    lines += _synthesis_lines(report["tasks"])
    return "\n".join(lines)


def _synthesis_lines(tasks: list[dict[str, Any]]) -> list[str]:
    """Synthesis tasks' figures, and the synthetic data classification tasks asked for."""
    lines: list[str] = []
    own = [(t, t["extras"].get("synthesis") or {}) for t in tasks]
    writers = [(t, s) for t, s in own if s and "generated" not in s]
    if writers:
        lines += ["", "synthesis tasks (label agreement and diversity of their evaluation texts)",
                  f"{'task':<24} {'agree':>6} {'dist':>6} {'dist-2':>6}"]
        for t, s in writers:
            lines.append(f"{t['task'][:24]:<24} {t['final']:>6.3f} " + " ".join(
                f"{s[k]:>6.3f}" if k in s else f"{'-':>6}"
                for k in ("eval_pairwise_distance", "eval_distinct_2")))
    asking = [(t, s) for t, s in own if s and "generated" in s]
    if asking:
        lines += ["", "synthetic training data (written, of the intended label, kept; the "
                      "trained adapter's agreement with the kept ones)",
                  f"{'task':<24} {'written':>7} {'label':>6} {'kept':>5} {'agree':>6}"]
        for t, s in asking:
            agree = f"{s['kept_agreement']:.3f}" if "kept_agreement" in s else "-"
            lines.append(f"{t['task'][:24]:<24} {int(s['generated']):>7} "
                         f"{int(s.get('confident', 0)):>6} {int(s['kept']):>5} {agree:>6}")
    return lines


def write_report(state: State, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    report = build_report(state)
    paths = {"json": out_dir / "report.json", "text": out_dir / "report.txt"}
    write_atomic(paths["json"], json.dumps(report, indent=1).encode())
    write_atomic(paths["text"], render_text(report).encode())
    if report["columns"]:
        paths.update(_plots(report, out_dir))
    return paths


def _plots(report: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cols = report["columns"]
    n = len(cols)
    mat = np.full((n, n), np.nan)
    for i, row in enumerate(report["matrix"]):
        for j, v in enumerate(row[:n]):
            if v is not None:
                mat[i, j] = v
    fig, ax = plt.subplots(figsize=(1.2 * n + 3, 1.0 * n + 2))
    im = ax.imshow(mat, vmin=0, vmax=1, cmap="viridis")
    for i in range(n):
        for j in range(n):
            if not np.isnan(mat[i, j]):
                ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center",
                        color="white" if mat[i, j] < 0.6 else "black", fontsize=8)
    ax.set_xticks(range(n), cols, rotation=45, ha="right")
    ax.set_yticks(range(n), [f"after {c}" for c in cols])
    ax.set_xlabel("evaluated task")
    m = report["metrics"]
    ax.set_title(f"accuracy matrix  ACC {m['acc']:.3f}  BWT {m['bwt']:+.3f}  FWT {m['fwt']:+.3f}")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    matrix_png = out_dir / "accuracy_matrix.png"
    fig.savefig(matrix_png, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for j, name in enumerate(cols):
        xs = [i for i in range(n) if not np.isnan(mat[i, j])]
        ax.plot(xs, [mat[i, j] for i in xs], marker="o", label=name)
    ax.set_xticks(range(n), [str(i) for i in range(n)])
    ax.set_xlabel("tasks learned so far (row of R)")
    ax.set_ylabel("eval accuracy")
    ax.set_ylim(0, 1.05)
    ax.set_title("accuracy of each task over time")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    time_png = out_dir / "accuracy_over_time.png"
    fig.savefig(time_png, dpi=110)
    plt.close(fig)
    paths = {"matrix_png": matrix_png, "time_png": time_png}
    trained = [(t, rounds) for t in report["tasks"]
               if (rounds := t["extras"].get("self_train", {}).get("rounds"))]
    if trained:
        fig, axes = plt.subplots(1, 3, figsize=(14, 4))
        done = 0  # rounds along the stream: exploration within a task and across tasks
        for t, rounds in trained:
            xs = [done + i + 1 for i in range(len(rounds))]
            done += len(rounds)
            for ax, key in zip(axes, ("balance", "eval_accuracy", "temperature"), strict=True):
                ax.plot(xs, [r[key] for r in rounds], marker="o", label=t["task"])
        for ax, title in zip(axes, ("balance score", "eval exact match", "temperature chosen"),
                             strict=True):
            ax.set_xlabel("self-training round, along the stream")
            ax.set_title(title)
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        paths["self_training_png"] = out_dir / "self_training.png"
        fig.savefig(paths["self_training_png"], dpi=110)
        plt.close(fig)
    return paths
