"""sweep_plots draws the plots `headroom sweep` links from report.md: a line plot per numeric
grid field (tokens/s too for batch), a bar chart for a grid of categories, the GPU line."""
import json

from PIL import Image

from headroom_runtime import sweep_plots


def _point(i, varied, measured, state="succeeded"):
    return {"index": i, "fields": dict(varied), "varied": dict(varied), "state": state, "predictedPeakBytes": measured * 1.05,
            "measuredPeakBytes": measured if state == "succeeded" else None, "tokensPerSecond": 100.0 + i}


def _doc(tmp_path, grid, points, gpu=None):
    doc = {"version": 1, "spec": {"name": "t"}, "device": "cuda" if gpu else "cpu", "gpu": gpu, "grid": grid, "points": points}
    (tmp_path / "points.json").write_text(json.dumps(doc))
    return tmp_path


def test_numeric_grids_get_line_plots_and_batch_gets_throughput(tmp_path):
    pts = [_point(i, {"method": m, "batch": b}, (1 + b) * 2**30) for i, (m, b) in enumerate((m, b) for m in ("lora", "qlora") for b in (1, 2, 4))]
    files = sweep_plots.draw(_doc(tmp_path, ["method", "batch"], pts, gpu={"name": "A100-80GB", "memoryBytes": 80e9}))
    assert files == ["memory-vs-batch.png", "tokens-vs-batch.png"]
    for f in files:
        with Image.open(tmp_path / f) as im:
            assert im.format == "PNG" and im.width > 500


def test_categories_get_a_bar_chart_named_for_the_experiment(tmp_path):
    pts = [_point(0, {"dtype": "fp32", "quant": "none"}, 30e6), _point(1, {"dtype": "bf16", "quant": "nf4"}, 18e6), _point(2, {"dtype": "bf16", "quant": "int8"}, 0, state="oom")]
    assert sweep_plots.draw(_doc(tmp_path, ["dtype", "quant"], pts)) == ["memory-by-precision.png"]


def test_main_refuses_a_directory_without_points(tmp_path, capsys):
    assert sweep_plots.main(["--dir", str(tmp_path)]) == 1
    assert "points.json does not exist" in capsys.readouterr().err
