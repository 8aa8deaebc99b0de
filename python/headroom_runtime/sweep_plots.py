"""The plots of a `headroom sweep` (DESIGN.md §2.1e): reads DIR/points.json, writes PNGs into DIR.

One plot per numeric grid field (seq, batch, rank): peak memory against it, one colour per
combination of the other grid fields, measured solid, predicted dashed; batch also gets tokens/s.
A grid of categories only (precision, targets, method) gets a bar chart, measured beside
predicted. Axes in GiB; the GPU's memory as a line when the sweep ran on a named GPU.
Prints one JSON line: {"files": [...]} (names relative to DIR).

    python -m headroom_runtime.sweep_plots --dir sweeps/seed-batch
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt  # noqa: E402

GIB = 1024 ** 3
NUMERIC = ("seq", "batch", "rank")
TITLES = {"seq": "sequence length (tokens)", "batch": "micro-batch (sequences)", "rank": "LoRA rank"}
# What a categorical grid is called in the file name (the seed's names for its experiments).
CATEGORY_NAMES = {("dtype",): "precision", ("quant",): "precision", ("dtype", "quant"): "precision", ("method",): "method", ("targets",): "targets"}


def _value(v) -> str:
    return "+".join(v) if isinstance(v, list) else str(v)


def _label(varied: dict, skip: str | None = None) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in varied.items() if k != skip) or "all points"


def _gpu_line(ax, doc) -> None:
    gpu = doc.get("gpu")
    if gpu and gpu.get("memoryBytes"):
        ax.axhline(gpu["memoryBytes"] / GIB, color="red", linewidth=1, linestyle=":", label=f"{gpu['name']} memory")


def _ok(p) -> bool:
    return p["state"] == "succeeded" and p.get("measuredPeakBytes")


def _save(fig, out: Path, name: str) -> str:
    """Writes one figure as out/name and frees it; returns the file name (report.md links it)."""
    fig.tight_layout()
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name


def _line_plot(doc, points, x: str, out: Path, metric: str) -> str:
    series: dict[str, list] = {}
    for p in points:
        if x in p["varied"]:
            series.setdefault(_label(p["varied"], x), []).append(p)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (name, ps) in enumerate(series.items()):
        ps = sorted(ps, key=lambda p: p["fields"][x])
        colour = f"C{i % 10}"
        if metric == "memory":
            meas = [(p["fields"][x], p["measuredPeakBytes"] / GIB) for p in ps if _ok(p)]
            pred = [(p["fields"][x], p["predictedPeakBytes"] / GIB) for p in ps if p.get("predictedPeakBytes")]
            oom = [p["fields"][x] for p in ps if p["state"] == "oom"]
            if meas:
                ax.plot(*zip(*meas), marker="o", color=colour, label=f"{name} measured")
            if pred:
                ax.plot(*zip(*pred), marker="x", linestyle="--", color=colour, label=f"{name} predicted")
            for xv in oom:
                ax.axvline(xv, color=colour, linestyle=":", alpha=0.5)
        else:
            rate = [(p["fields"][x], p["tokensPerSecond"]) for p in ps if _ok(p) and p.get("tokensPerSecond")]
            if rate:
                ax.plot(*zip(*rate), marker="o", color=colour, label=name)
    if metric == "memory":
        _gpu_line(ax, doc)
        ax.set_ylabel("peak memory (GiB)")
        ax.set_ylim(bottom=0)
    else:
        ax.set_ylabel("tokens per second")
        ax.set_ylim(bottom=0)
    values = sorted({p["fields"][x] for p in points if x in p["varied"]})
    if values and values[0] > 0 and values[-1] / values[0] >= 32:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(TITLES.get(x, x))
    what = "peak memory" if metric == "memory" else "throughput"
    ax.set_title(f"{doc['spec']['name']}: {what} by {TITLES.get(x, x)} on {doc['device']}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out, f"{'memory' if metric == 'memory' else 'tokens'}-vs-{x}.png")


def _bar_plot(doc, points, fields: list[str], out: Path) -> str:
    labels = [_label({k: p["varied"][k] for k in fields if k in p["varied"]}) for p in points]
    meas = [p["measuredPeakBytes"] / GIB if _ok(p) else 0 for p in points]
    pred = [(p.get("predictedPeakBytes") or 0) / GIB for p in points]
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(points) + 2), 4.5))
    xs = range(len(points))
    w = 0.38
    ax.bar([i - w / 2 for i in xs], meas, w, label="measured", color="C0")
    ax.bar([i + w / 2 for i in xs], pred, w, label="predicted", color="none", edgecolor="C1", linestyle="--", linewidth=1.5, hatch="//")
    for i, p in enumerate(points):
        if p["state"] != "succeeded":
            ax.annotate(p["state"], (i - w / 2, 0), ha="center", va="bottom", fontsize=8, color="red")
    _gpu_line(ax, doc)
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("peak memory (GiB)")
    key = CATEGORY_NAMES.get(tuple(fields), "-".join(fields))
    ax.set_title(f"{doc['spec']['name']}: peak memory by {key} on {doc['device']}")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out, f"memory-by-{key}.png")


def draw(directory: Path) -> list[str]:
    doc = json.loads((directory / "points.json").read_text())
    points = sorted(doc["points"], key=lambda p: p["index"])
    grid = [g for g in doc.get("grid", []) if any(g in p["varied"] for p in points)]
    files = []
    numeric = [g for g in grid if g in NUMERIC]
    for x in numeric:
        files.append(_line_plot(doc, points, x, directory, "memory"))
        if x == "batch":
            files.append(_line_plot(doc, points, x, directory, "tokens"))
    if not numeric and grid:
        files.append(_bar_plot(doc, points, grid, directory))
    return files


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dir", required=True, help="the sweep's --out directory (holds points.json)")
    args = p.parse_args(argv)
    directory = Path(args.dir)
    if not (directory / "points.json").is_file():
        print(f"sweep_plots: {directory}/points.json does not exist: run `headroom sweep` first", file=sys.stderr)
        return 1
    print(json.dumps({"files": draw(directory)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
