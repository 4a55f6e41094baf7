"""One self-contained HTML report per model folder: metrics table, ROC and PR curves, training
curves and a few heatmaps, every image embedded as base64 so the file opens without a server.

Everything comes from the files the trainer and `generate_heatmaps` leave in the folder
(``results_log.csv``, ``{tile,slide,patient}_predictions_*.parquet``, TensorBoard event files,
``heatmaps/*.png``); the report adds nothing that is not on disk.
"""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd

from jaxwsi.atomic import write_text_atomic
from jaxwsi.experiment.heatmap import prediction_columns

REPORT_FILE = "report.html"
LEVELS = ("tile", "slide", "patient")
_PREDICTIONS = re.compile(r"^(tile|slide|patient)_predictions_(?P<tag>.+)\.parquet$")
_MAX_HEATMAPS = 6


def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.2, 3.6), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    return _img(buffer.getvalue())


def _img(data: bytes) -> str:
    return f'<img src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def latest_predictions(model_dir: Path) -> tuple[str, dict[str, Path]] | None:
    """The newest set of prediction files: (tag, level → path); ``eval`` wins over the
    highest ``val_epoch{N}``."""
    tags: dict[str, dict[str, Path]] = {}
    for path in model_dir.glob("*_predictions_*.parquet"):
        match = _PREDICTIONS.match(path.name)
        if match:
            tags.setdefault(match["tag"], {})[match[1]] = path
    if not tags:
        return None

    def rank(tag: str) -> tuple[int, int]:
        epoch = re.search(r"epoch(\d+)$", tag)
        return (1, 0) if tag == "eval" else (0, int(epoch[1]) if epoch else -1)

    tag = max(tags, key=rank)
    return tag, tags[tag]


def _curves(table: pd.DataFrame, outcome: str, columns: list[str], level: str) -> str:
    """ROC and PR curves (one line per class, one-vs-rest) as two embedded PNGs."""
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    truth = table[f"{outcome}-y_true"].to_numpy()
    html_parts = []
    for kind in ("ROC", "PR"):
        figure = _figure()
        axes = figure.add_subplot()
        for i, column in enumerate(columns):
            positive = truth == i
            if positive.all() or not positive.any():
                continue
            scores = table[column].to_numpy()
            if kind == "ROC":
                x, y, _ = roc_curve(positive, scores)
                axes.plot(x, y, label=f"class {i} (AUC {auc(x, y):.3f})")
                axes.plot([0, 1], [0, 1], ":", color="grey")
                axes.set(xlabel="false positive rate", ylabel="true positive rate")
            else:
                precision, recall, _ = precision_recall_curve(positive, scores)
                axes.plot(recall, precision, label=f"class {i}")
                axes.set(xlabel="recall", ylabel="precision")
        axes.set_title(f"{outcome}, {level} level: {kind}", fontsize=9)
        if axes.get_legend_handles_labels()[0]:  # no curve when a level has one class only
            axes.legend(fontsize=7)
        html_parts.append(_png(figure))
    return "".join(html_parts)


def _training_curves(model_dir: Path) -> str:
    from jaxwsi.train.events import read_scalars

    scalars = read_scalars(model_dir)
    if not scalars:
        return "<p>No TensorBoard scalars found.</p>"
    parts = []
    for tag in sorted(scalars):
        points = np.asarray(scalars[tag], dtype=np.float64)
        figure = _figure()
        axes = figure.add_subplot()
        axes.plot(points[:, 0], points[:, 1], marker="." if len(points) < 30 else None)
        axes.set(xlabel="step", title=tag)
        parts.append(_png(figure))
    return "".join(parts)


def _metrics_table(model_dir: Path) -> str:
    log_path = model_dir / "results_log.csv"
    if not log_path.is_file():
        return "<p>No results_log.csv.</p>"
    table = pd.read_csv(log_path)
    keep = [c for c in table.columns if c not in ("train_metrics", "val_metrics")]
    return table[keep].to_html(index=False, float_format=lambda v: f"{v:.4f}", border=0)


def write_report(model_dir: str | Path, *, title: str | None = None) -> Path:
    """Write ``report.html`` into a model folder from the files in it; returns its path."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model folder not found: {model_dir}")
    sections = [f"<h2>Metrics</h2>{_metrics_table(model_dir)}"]
    found = latest_predictions(model_dir)
    if found is not None:
        tag, paths = found
        curves = []
        for level in LEVELS:
            if level not in paths:
                continue
            table = pd.read_parquet(paths[level])
            for outcome, columns in prediction_columns(table).items():
                if f"{outcome}-y_true" in table and len(columns) > 1:
                    curves.append(_curves(table, outcome, columns, level))
        if curves:
            sections.append(f"<h2>ROC and PR curves ({html.escape(tag)})</h2>{''.join(curves)}")
    sections.append(f"<h2>Training curves</h2>{_training_curves(model_dir)}")
    heatmaps = sorted((model_dir / "heatmaps").glob("*.png"))[:_MAX_HEATMAPS]
    if heatmaps:
        images = "".join(_img(p.read_bytes()) for p in heatmaps)
        sections.append(f"<h2>Heatmaps</h2>{images}")
    name = html.escape(title or model_dir.name)
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{name}</title><style>"
        "body{font-family:sans-serif;margin:2em}img{max-width:48%;margin:4px}"
        "table{border-collapse:collapse;font-size:12px}td,th{padding:3px 8px;"
        "border-bottom:1px solid #ccc}</style></head><body>"
        f"<h1>{name}</h1>{''.join(sections)}</body></html>\n"
    )
    path = model_dir / REPORT_FILE
    write_text_atomic(path, page)
    return path
