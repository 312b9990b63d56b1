"""The report's charts are PNG files, drawn with a CJK font when one is installed and without one otherwise."""

from __future__ import annotations

from evaluation import charts
from evaluation.metrics import classification_metrics, span_metrics

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def classification_report() -> dict:
    return {"task": "classify", "rows": 4, **classification_metrics(["财经", "体育", "体育", "科技"],
                                                                      ["财经", "体育", "财经", None],
                                                                      ["财经", "体育", "科技"])}


def test_both_charts_are_written_as_png_beside_the_report_prefix(tmp_path):
    paths = charts.write_charts(classification_report(), tmp_path / "out" / "report")
    assert [path.name for path in paths] == ["report.confusion.png", "report.f1.png"]
    assert all(path.read_bytes().startswith(PNG_MAGIC) for path in paths)


def test_charts_are_still_drawn_when_no_cjk_font_is_installed(tmp_path, monkeypatch):
    monkeypatch.setattr(charts, "CJK_FONTS", ("No Such Font For Chinese",))
    assert charts.cjk_font() is None
    paths = charts.write_charts(classification_report(), tmp_path / "report")
    assert all(path.stat().st_size > 1000 and path.read_bytes().startswith(PNG_MAGIC) for path in paths)


def test_extraction_charts_use_the_field_table(tmp_path):
    gold, got = [{("人名", 0, 2)}], [{("地名", 0, 2)}]
    report = {"task": "extract", "rows": 1, **span_metrics(gold, got, ["人名", "地名"]),
              "confusion": {"gold": ["人名", "地名"], "predicted": ["人名", "地名"], "matrix": [[0, 1], [0, 0]]}}
    paths = charts.write_charts(report, tmp_path / "ner")
    assert all(path.read_bytes().startswith(PNG_MAGIC) for path in paths)
