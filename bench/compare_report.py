"""The `synlearner bench` report: the comparison table, transfer gains, sample efficiency,
the targets, `bench.json` and two PNGs (matrix heatmaps side by side, accuracy over time)."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from synlearner.stream.io import write_atomic


def _f(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def efficiency(run: dict[str, Any]) -> dict[str, Any]:
    """Steps to reach per-task's final accuracy: tasks reached, the median (misses count as
    never) and the mean over the tasks reached."""
    reach = run["steps_to_per_task_final"]
    if not reach:
        return {"reached": None, "tasks": len(run["columns"]), "median_steps": None}
    steps = [math.inf if s is None else s for s in reach.values()]
    median = statistics.median(steps)
    reached = [s for s in reach.values() if s is not None]
    return {"reached": len(reached), "tasks": len(reach),
            "median_steps": None if math.isinf(median) else median,
            "mean_steps": statistics.mean(reached) if reached else None}


def _last_row(run: dict[str, Any]) -> dict[str, float]:
    """Each task's accuracy at the end of the stream (the last row of the task-aware matrix)."""
    row = run["matrix"][-1] if run["matrix"] else []
    return {c: v for c, v in zip(run["columns"], row, strict=False) if v is not None}


def targets(summary: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """The issue's targets that the strategies run allow checking: (name, met, numbers)."""
    by = {r["strategy"]: r for r in summary["strategies"]}
    out: list[tuple[str, bool, str]] = []
    syn = by.get("synlearner")
    if syn is None:
        return out
    acc, fwt = syn["task_aware"]["acc"], syn["task_aware"]["fwt"]
    if "per-task" in by:
        pt = by["per-task"]["task_aware"]
        out.append(("ACC >= per-task", acc >= pt["acc"], f"{acc:.3f} vs {pt['acc']:.3f}"))
        out.append(("FWT > 0 and > per-task", fwt > 0 and fwt > pt["fwt"],
                    f"{fwt:+.3f} vs {pt['fwt']:+.3f}"))
        ends, alone = _last_row(syn), _last_row(by["per-task"])
        worse = [f"{t} {v:.3f} vs {alone[t]:.3f}" for t, v in ends.items()
                 if t in alone and v < alone[t] - 1e-9]
        out.append(("no task ends below per-task's", not worse,
                    f"{len(worse)} of {len(ends)} below" + (": " + ", ".join(worse)
                                                            if worse else "")))
    if "multitask" in by:
        mt = by["multitask"]["task_aware"]["acc"]
        out.append(("ACC within 2 points of multitask", acc >= mt - 0.02,
                    f"{acc:.3f} vs {mt:.3f} ({100 * (acc - mt):+.1f} points)"))
    agn = syn["task_agnostic"]
    if agn:
        out.append(("task-agnostic BWT >= -0.01", agn["bwt"] >= -0.01 - 1e-9, f"{agn['bwt']:+.3f}"))
    if "seq-lora" in by:
        sl = by["seq-lora"]["task_aware"]
        out.append(("seq-lora forgets clearly (forgetting >= 0.05)", sl["forgetting"] >= 0.05,
                    f"forgetting {sl['forgetting']:.3f}, BWT {sl['bwt']:+.3f}"))
    return out


def _generation_lines(runs: list[dict[str, Any]]) -> list[str]:
    """Generation strategies: what they sampled, their preference pairs, and the final exact
    match of every task."""
    if not any("samples_generated" in r for r in runs):
        return []
    lines = ["", "sampling: answers generated (self-training, its search, preference candidates), "
             "mean pass@K over self-training rounds, preference pairs by source",
             f"  {'strategy':<20} {'samples':>8} {'pass@K':>7} {'pairs':>6} {'own':>5} "
             f"{'neigh':>5} {'cand':>5} {'tmpl':>5}"]
    for r in runs:
        p = r.get("preference_pairs") or {}
        lines.append(
            f"  {r['strategy']:<20} {r.get('samples_generated', 0):>8} {_f(r.get('pass_at_k')):>7} "
            f"{int(p.get('pairs', 0)):>6} {int(p.get('pairs_own', 0)):>5} "
            f"{int(p.get('pairs_neighbour', 0)):>5} {int(p.get('pairs_candidate', 0)):>5} "
            f"{int(p.get('pairs_template', 0)):>5}")
    columns = runs[0]["columns"]
    lines += ["", "final exact match per task",
              f"  {'task':<22} " + " ".join(f"{r['strategy'][:19]:>19}" for r in runs)]
    for j, col in enumerate(columns):
        cells = [r["matrix"][-1][j] if r["matrix"] and j < len(r["matrix"][-1]) else None
                 for r in runs]
        lines.append(f"  {col[:22]:<22} " + " ".join(f"{_f(c):>19}" for c in cells))
    return lines


def _synthesis_lines(runs: list[dict[str, Any]]) -> list[str]:
    """Synthesis strategies: each few-shot task's accuracy and the synthetic examples it
    was given; each synthesis task's own figures."""
    if not any("classification" in r for r in runs):
        return []
    lines = ["", "few-shot classification with synthetic data: accuracy (last row); texts "
             "written, of the intended label by the filter, kept; the trained adapter's "
             "agreement with the kept ones; their mean pairwise cosine distance and distinct-2",
             f"  {'strategy':<26} {'task':<12} {'acc':>6} {'written':>7} {'label':>6} "
             f"{'kept':>5} {'agree':>6} {'dist':>6} {'dist-2':>6}"]
    for r in runs:
        for t in r.get("classification", []):
            lines.append(
                f"  {r['strategy']:<26} {t['task_id'][:12]:<12} {_f(t['accuracy']):>6} "
                f"{int(t.get('generated', 0)):>7} {int(t.get('confident', 0)):>6} "
                f"{int(t.get('kept', 0)):>5} {_f(t.get('kept_agreement')):>6} "
                f"{_f(t.get('kept_pairwise_distance')):>6} {_f(t.get('kept_distinct_2')):>6}")
    lines += ["", "synthesis tasks: eval label agreement; GRPO samples, their judge agreement "
              "and mean reward; eval texts' pairwise distance and distinct-2",
              f"  {'strategy':<26} {'task':<14} {'agree':>6} {'samples':>7} {'s-agree':>7} "
              f"{'reward':>6} {'dist':>6} {'dist-2':>6}"]
    for r in runs:
        for w in r.get("writers", []):
            lines.append(
                f"  {r['strategy']:<26} {w['task_id'][:14]:<14} {_f(w['final']):>6} "
                f"{int(w.get('samples', 0)):>7} {_f(w.get('sample_agreement')):>7} "
                f"{_f(w.get('reward_mean')):>6} {_f(w.get('eval_pairwise_distance')):>6} "
                f"{_f(w.get('eval_distinct_2')):>6}")
    return lines


def _why_fresh(probe: dict[str, Any]) -> str:
    """Why the probe started a task fresh although it had a candidate start: the copy did
    worse than fresh (higher held-out loss, no better accuracy), or the copy was as good but
    the replay with it did worse than the task alone, and the task-alone arm (fresh, no
    replay) won."""
    if probe["transferred_loss"] > probe["fresh_loss"] and probe["transferred"] <= probe["fresh"]:
        return "fresh (negative transfer)"
    return "fresh, no replay (the copy with replay did worse than the task alone)"


def render_text(summary: dict[str, Any]) -> str:
    s = summary["settings"]
    runs = summary["strategies"]
    n = len(runs[0]["columns"]) if runs else 0
    lines = [f"synlearner bench: {n} tasks, {s['steps']} steps per task, seed {s['seed']}", ""]
    width = max([11, *(len(r["strategy"]) for r in runs)])
    head = (f"{'strategy':<{width}} | {'aware: ACC':>10} {'BWT':>7} {'FWT':>7} {'forget':>6} | "
            f"{'agnostic: ACC':>13} {'BWT':>7} {'FWT':>7} {'forget':>6} | {'s/task':>6} "
            f"{'peak MiB':>8} | {'reach per-task final (steps)':>28}")
    lines += [head, "-" * len(head)]
    for r in runs:
        a, g, e = r["task_aware"], r["task_agnostic"] or {}, efficiency(r)
        median = "inf" if e["median_steps"] is None else f"{e['median_steps']:g}"
        mean = "-" if e.get("mean_steps") is None else f"{e['mean_steps']:.1f}"
        reach = ("n/a" if e["reached"] is None
                 else f"{e['reached']}/{e['tasks']}, median {median}, mean {mean}")
        lines.append(
            f"{r['strategy']:<{width}} | {_f(a['acc']):>10} {_f(a['bwt'], True):>7} "
            f"{_f(a['fwt'], True):>7} {_f(a['forgetting']):>6} | {_f(g.get('acc')):>13} "
            f"{_f(g.get('bwt'), True):>7} {_f(g.get('fwt'), True):>7} "
            f"{_f(g.get('forgetting')):>6} | {r['seconds_per_task']:>6.1f} "
            f"{r['peak_rss_mib']:>8.0f} | {reach:>28}")
    lines += ["", "task-aware: each task answered with the adapter its strategy keeps for it; "
              "task-agnostic: no task id (per-task adapters: each input routed to the adapter of the "
              "task with the nearest input centroid, or the consolidated adapter where "
              "learner.consolidate merges; one-adapter strategies: the same adapter).",
              "multitask learns once from the whole stream, so BWT, FWT and forgetting do not "
              "apply (n/a). reach: tasks whose learning curve reached per-task's final accuracy, "
              "and the median and mean step it took."]
    for r in runs:
        probes = [t for t in r["tasks"] if t.get("probe") and t["probe"]["candidate"]]
        if probes:
            lines += ["", f"transfer gain ({r['strategy']}): held-out accuracy from the nearest "
                          f"task's adapter vs from a fresh one, after the probe's steps (0: "
                          f"before training, on train examples)"]
            lines.append(f"  {'task':<22} {'nearest task':<22} {'steps':>5} {'fresh':>6} "
                         f"{'nearest':>7} {'gain':>7}  start used")
            for t in probes:
                p = t["probe"]
                used = p["chosen"] or _why_fresh(p)
                lines.append(
                    f"  {t['task_id'][:22]:<22} {p['candidate'][:22]:<22} {p['steps']:>5} "
                    f"{p['fresh']:>6.3f} {p['transferred']:>7.3f} "
                    f"{p['transferred'] - p['fresh']:>+7.3f}  {used}")
        dropped = [t["task_id"] for t in r["tasks"] if t.get("probe") and not t["probe"]["replay"]]
        if dropped:
            lines.append(f"  replay dropped (worse than the task alone on held-out data): "
                         f"{', '.join(dropped)}")
    lines += _generation_lines(runs)
    lines += _synthesis_lines(runs)
    sim = summary.get("similarity") or {}
    if sim.get("tasks"):
        ids = sim["tasks"]
        lines += ["", "task similarity (memory.similarity: instruction, label names, inputs)"]
        lines.append(f"  {'':<22} " + " ".join(f"{t[:7]:>7}" for t in ids))
        for t, row in zip(ids, sim["matrix"], strict=True):
            lines.append(f"  {t[:22]:<22} " + " ".join(f"{v:>7.3f}" for v in row))
        for t, (other, v) in sim.get("nearest_earlier", {}).items():
            lines.append(f"  nearest earlier task of {t}: {other} ({v:.3f})")
    checks = targets(summary)
    if checks:
        lines += ["", "targets"]
        lines += [f"  [{'met' if ok else 'NOT MET'}] {name}: {numbers}" for name, ok, numbers in checks]
    return "\n".join(lines)


def write_bench_report(summary: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "bench.json", "text": out_dir / "bench.txt"}
    body = {**summary, "targets": [{"target": n, "met": ok, "numbers": v}
                                   for n, ok, v in targets(summary)]}
    write_atomic(paths["json"], json.dumps(body, indent=1).encode())
    write_atomic(paths["text"], render_text(summary).encode())
    if summary["strategies"]:
        paths.update(_plots(summary, out_dir))
    return paths


def _grid(matrix: list[list[float | None]], n: int) -> Any:
    import numpy as np

    mat = np.full((n, n), np.nan)
    for i, row in enumerate(matrix[:n]):
        for j, v in enumerate(row[:n]):
            if v is not None:
                mat[i, j] = v
    return mat


def _plots(summary: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    runs = summary["strategies"]
    k = len(runs)
    fig, axes = plt.subplots(2, k, figsize=(3.2 * k + 1, 6.8), squeeze=False)
    im = None
    for c, r in enumerate(runs):
        n = len(r["columns"])  # a strategy may learn part of the stream (few-shot)
        for row, (label, key, metrics) in enumerate((
                ("task-aware", "matrix", r["task_aware"]),
                ("task-agnostic", "agnostic_matrix", r["task_agnostic"]))):
            ax = axes[row][c]
            im = ax.imshow(_grid(r[key], n), vmin=0, vmax=1, cmap="viridis")
            acc = metrics.get("acc") if metrics else None
            bwt = metrics.get("bwt") if metrics else None
            ax.set_title(f"{r['strategy']} ({label})\nACC {_f(acc)} BWT {_f(bwt, True)}",
                         fontsize=8)
            ax.set_xticks(range(n), [str(j) for j in range(n)], fontsize=6)
            ax.set_yticks(range(n), [str(i) for i in range(n)], fontsize=6)
    fig.supxlabel("evaluated task j; row i: after learning task i", fontsize=8)
    if im is not None:
        fig.colorbar(im, ax=axes, fraction=0.02)
    heat = out_dir / "matrices.png"
    fig.savefig(heat, dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, k, figsize=(3.4 * k + 1, 3.8), squeeze=False, sharey=True)
    for c, r in enumerate(runs):
        ax = axes[0][c]
        n = len(r["columns"])
        mat = _grid(r["matrix"], n)
        for j, name in enumerate(r["columns"]):
            xs = [i for i in range(n) if not np.isnan(mat[i, j])]
            ax.plot(xs, [mat[i, j] for i in xs], marker=".", linewidth=1, label=name)
        ax.set_title(r["strategy"], fontsize=9)
        ax.set_xlabel("tasks learned so far", fontsize=8)
        ax.set_ylim(0, 1.05)
    axes[0][0].set_ylabel("eval accuracy (task-aware)")
    axes[0][-1].legend(fontsize=5, loc="lower right")
    fig.tight_layout()
    over = out_dir / "accuracy_over_time.png"
    fig.savefig(over, dpi=110)
    plt.close(fig)
    return {"matrices_png": heat, "time_png": over}
