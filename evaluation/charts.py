"""The report's two pictures: a confusion-matrix heat map and a per-label F1 bar chart, as PNG files.

Chinese labels need a CJK font. The first one installed from CJK_FONTS is used (Debian's
fonts-wqy-microhei, Noto CJK); without any, the charts are still drawn with matplotlib's
default font, in which Chinese characters show as boxes. matplotlib lists fonts from a cache
written the first time it ran, so a font installed since (``apt-get install fonts-wqy-microhei``)
is missing from it: when no CJK font is listed, the font folders are looked at again and any
file the cache does not know is added.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CJK_FONTS = ("WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC",
             "SimHei", "Microsoft YaHei", "PingFang SC")


def cjk_font(manager: Any = None, font_dirs: Sequence[Path] | None = None,
             families: Sequence[str] | None = None) -> str | None:
    """The name of an installed font that has Chinese characters, or None. ``manager`` is matplotlib's
    font list (its cached one by default); ``font_dirs`` the folders searched for fonts the list does
    not know yet (by default the system's, as matplotlib and fontconfig name them); ``families`` the
    names looked for (CJK_FONTS)."""
    from matplotlib import font_manager

    manager = font_manager.fontManager if manager is None else manager
    families = CJK_FONTS if families is None else families
    found = _first_family(manager, families)
    if found is None:
        known = {font.fname for font in manager.ttflist}
        paths = None if font_dirs is None else [str(path) for path in font_dirs]
        added = 0
        for path in font_manager.findSystemFonts(fontpaths=paths):
            if path not in known:
                try:
                    manager.addfont(path)
                    added += 1
                except (OSError, RuntimeError, ValueError) as exc:  # a broken font file is skipped, not fatal
                    log.debug("font %s not usable: %s", path, exc)
        if added:
            log.info("%d fonts installed since matplotlib's font cache was written were added", added)
            found = _first_family(manager, families)
    return found


def _first_family(manager: Any, families: Sequence[str]) -> str | None:
    installed = {font.name for font in manager.ttflist}
    return next((name for name in families if name in installed), None)


def write_charts(report: dict[str, Any], prefix: Path) -> list[Path]:
    """Write ``<prefix>.confusion.png`` and ``<prefix>.f1.png``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")  # no display: draw straight to files
    from matplotlib import pyplot as plt

    font = cjk_font()
    if font is None:
        log.warning("no CJK font found (install fonts-wqy-microhei): Chinese labels in the charts show as boxes")
    style: dict[Any, Any] = {"font.family": "sans-serif", "font.sans-serif": [font or "DejaVu Sans", "DejaVu Sans"],
             "axes.unicode_minus": False}
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    paths = [prefix.with_name(prefix.name + ".confusion.png"), prefix.with_name(prefix.name + ".f1.png")]
    with plt.rc_context(style), warnings.catch_warnings():
        # Without a CJK font matplotlib warns once per missing character; the one warning above says it all.
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        if report["task"] == "summarize":  # no labels to confuse: one chart of the ROUGE figures
            _rouge_bars(plt, report, paths[1])
            return paths[1:]
        _confusion(plt, report, paths[0])
        _f1_bars(plt, report, paths[1])
    return paths


def _confusion(plt: Any, report: dict[str, Any], path: Path) -> None:
    import numpy as np

    confusion = report["confusion"]
    matrix = np.asarray(confusion["matrix"], dtype=float)
    gold, predicted = confusion["gold"], confusion["predicted"]
    size = max(5.0, 0.55 * max(len(gold), len(predicted)) + 3)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(matrix, cmap="Blues", aspect="auto")
    ax.set_xticks(range(len(predicted)), predicted, rotation=45, ha="right")
    ax.set_yticks(range(len(gold)), gold)
    ax.set_xlabel("模型给出 Predicted")
    ax.set_ylabel("标注 Gold")
    title = ("混淆矩阵 Confusion matrix" if report["task"] == "classify"
             else "字段混淆（按位置）Field confusion by offsets")
    ax.set_title(f"{title} · {report['rows']} rows")
    threshold = matrix.max() / 2 if matrix.size and matrix.max() else 1
    if matrix.size <= 900:  # numbers in the cells while they can still be read
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                if matrix[i, j]:
                    ax.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center", fontsize=8,
                            color="white" if matrix[i, j] > threshold else "black")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _f1_bars(plt: Any, report: dict[str, Any], path: Path) -> None:
    table = report["per_label"] if report["task"] == "classify" else report["per_field"]
    names = list(table)
    scores = [table[name]["f1"] for name in names]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(names) + 2), 4.5))
    bars = ax.bar(range(len(names)), scores, color="#3b7dd8")
    ax.bar_label(bars, labels=[f"{score:.2f}" for score in scores], fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("F1")
    headline = (f"macro-F1 {report['macro_f1']:.3f}" if report["task"] == "classify"
                else f"micro-F1 {report['micro']['f1']:.3f}")
    ax.set_title(f"每个{'标签' if report['task'] == 'classify' else '字段'} F1 · per-label F1 ({headline})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _rouge_bars(plt: Any, report: dict[str, Any], path: Path) -> None:
    keys, parts = ("rouge1", "rouge2", "rougeL"), ("precision", "recall", "f1")
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for offset, part in enumerate(parts):
        values = [report[key][part] for key in keys]
        bars = ax.bar([i + (offset - 1) * 0.27 for i in range(len(keys))], values, width=0.27, label=part)
        ax.bar_label(bars, labels=[f"{value:.2f}" for value in values], fontsize=8)
    ax.set_xticks(range(len(keys)), ["ROUGE-1", "ROUGE-2", "ROUGE-L"])
    ax.set_ylim(0, 1.05)
    ax.legend()
    ax.set_title(f"ROUGE（字）· character ROUGE, mean of {report['rows']} rows")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
