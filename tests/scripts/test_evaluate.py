"""scripts/evaluate.py end to end on demo weights, on the repo's samples of the TNEWS and CLUENER formats.

Demo weights answer at random, so the scores themselves mean nothing here; what is checked is that
every output is written and that scoring the saved predictions gives back the same report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def evaluate(*args: object, model_dir: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "SEQGPT_DEVICE": "cpu", "HF_HUB_OFFLINE": "1",
               "SEQGPT_MODEL_DIR": str(model_dir or "/nonexistent/no-model-here"), **env}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), *map(str, args), "--no-progress"],
                          capture_output=True, text=True, timeout=900, cwd=ROOT, env=environ)


@pytest.fixture(scope="module")
def classify_run(demo_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("classify")
    done = evaluate("--task", "classify", "--data", DATA / "eval_tnews_sample.jsonl",
                    "--map", DATA / "eval_tnews_map.txt", "--json", out / "report.json",
                    "--save-predictions", out / "predictions.jsonl", model_dir=demo_model_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    (out / "stdout.md").write_text(done.stdout, encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def extract_run(demo_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("extract")
    # Random weights rarely stop on their own: a short answer per field keeps the run quick.
    done = evaluate("--task", "extract", "--data", DATA / "eval_cluener_sample.jsonl",
                    "--map", DATA / "eval_cluener_map.txt", "--json", out / "report.json",
                    "--save-predictions", out / "predictions.jsonl", model_dir=demo_model_dir,
                    SEQGPT_EXTRACT_MAX_NEW_TOKENS="8")
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_classification_writes_report_charts_predictions_and_a_markdown_summary(classify_run: Path):
    report = json.loads((classify_run / "report.json").read_text(encoding="utf-8"))
    assert report["task"] == "classify" and report["rows"] == 45
    assert 0.0 <= report["accuracy"] <= 1.0 and 0.0 <= report["macro_f1"] <= 1.0
    assert len(report["per_label"]) == 15 and sum(m["support"] for m in report["per_label"].values()) == 45
    assert report["latency_ms"]["p50"] <= report["latency_ms"]["p95"] and report["rows_per_s"] > 0
    for chart in ("report.confusion.png", "report.f1.png"):
        assert (classify_run / chart).read_bytes().startswith(PNG_MAGIC)
    predictions = read_jsonl(classify_run / "predictions.jsonl")
    assert len(predictions) == 45
    assert all(p["label"] in report["names"] and abs(sum(p["scores"].values()) - 1) < 1e-3 for p in predictions)
    accuracy = sum(p["label"] == g for p, g in zip(predictions, _tnews_gold(), strict=True)) / 45
    assert report["accuracy"] == round(accuracy, 4)
    assert f"accuracy **{report['accuracy']:.4f}**" in (classify_run / "stdout.md").read_text(encoding="utf-8")


def _tnews_gold() -> list[str]:
    mapping = dict(line.split("=") for line in (DATA / "eval_tnews_map.txt").read_text("utf-8").splitlines()
                   if line and not line.startswith("#"))
    return [mapping[row["label_desc"]] for row in read_jsonl(DATA / "eval_tnews_sample.jsonl")]


def test_extraction_writes_report_charts_and_predictions_in_the_api_shape(extract_run: Path):
    report = json.loads((extract_run / "report.json").read_text(encoding="utf-8"))
    assert report["task"] == "extract" and report["rows"] == 40
    assert set(report["micro"]) >= {"precision", "recall", "f1"}
    assert report["micro"]["support"] == sum(m["support"] for m in report["per_field"].values()) > 0
    for chart in ("report.confusion.png", "report.f1.png"):
        assert (extract_run / chart).read_bytes().startswith(PNG_MAGIC)
    predictions = read_jsonl(extract_run / "predictions.jsonl")
    assert len(predictions) == 40
    for prediction in predictions:
        assert set(prediction["fields"]) == set(report["names"])
        for mentions in prediction["fields"].values():
            assert all(prediction["text"][m["start"]:m["end"]] == m["text"] for m in mentions)


@pytest.mark.parametrize("task", ["classify", "extract"])
def test_saved_predictions_give_back_the_same_report_without_a_model(task, classify_run, extract_run, tmp_path):
    run = classify_run if task == "classify" else extract_run
    sample, mapping = ("tnews", "tnews") if task == "classify" else ("cluener", "cluener")
    done = evaluate("--task", task, "--data", DATA / f"eval_{sample}_sample.jsonl",
                    "--map", DATA / f"eval_{mapping}_map.txt", "--json", tmp_path / "again.json",
                    "--predictions", run / "predictions.jsonl")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "loading the model" not in done.stderr  # SEQGPT_MODEL_DIR points nowhere: no model was needed
    assert (tmp_path / "again.json").read_text("utf-8") == (run / "report.json").read_text("utf-8")
    assert (tmp_path / "again.f1.png").read_bytes().startswith(PNG_MAGIC)


def test_an_interrupted_run_resumes_from_its_saved_predictions(classify_run, demo_model_dir, tmp_path):
    data = tmp_path / "eight.jsonl"
    data.write_text("".join((DATA / "eval_tnews_sample.jsonl").read_text("utf-8").splitlines(True)[:8]), "utf-8")
    full = (classify_run / "predictions.jsonl").read_text("utf-8").splitlines(True)
    saved = tmp_path / "predictions.jsonl"
    saved.write_text("".join(full[:5]) + full[5][:40], "utf-8")  # five rows, then a line cut short
    done = evaluate("--task", "classify", "--data", data, "--map", DATA / "eval_tnews_map.txt",
                    "--save-predictions", saved, model_dir=demo_model_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming: 5 of 8 rows" in done.stderr
    resumed = saved.read_text("utf-8").splitlines(True)
    assert len(resumed) == 8 and resumed[:5] == full[:5]
    assert [json.loads(line)["label"] for line in resumed] == [json.loads(line)["label"] for line in full[:8]]


def test_compare_shows_the_score_change_and_the_rows_that_changed(tmp_path):
    data = tmp_path / "gold.csv"
    data.write_text("text,label\n好看,正面\n难看,负面\n一般,负面\n", encoding="utf-8")

    def predictions(name: str, labels: list[str]) -> Path:
        path = tmp_path / name
        path.write_text("".join(json.dumps({"line": n + 2, "label": label, "scores": {label: 1.0}, "latency_ms": 1,
                                            "wall_ms": 1}, ensure_ascii=False) + "\n"
                                for n, label in enumerate(labels)), encoding="utf-8")
        return path

    a = predictions("a.jsonl", ["负面", "负面", "正面"])
    b = predictions("b.jsonl", ["正面", "正面", "正面"])
    done = evaluate("--task", "classify", "--data", data, "--compare", a, b, "--json", tmp_path / "compare.json")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "compare.json").read_text("utf-8"))
    assert result["scores"]["accuracy"] == {"a": round(1 / 3, 4), "b": round(1 / 3, 4), "change": 0.0}
    assert [(r["line"], r["verdict"]) for r in result["changed"]] == [(2, "fixed"), (3, "broken")]
    assert "| 2 | fixed | 好看 |" in done.stdout


def test_bad_rows_are_reported_with_line_numbers_and_bad_files_exit_calmly(demo_model_dir, tmp_path):
    data = tmp_path / "gold.jsonl"
    rows = ['{"text": "好看", "label": "正面"}', '{"text": "缺标签"}', '{"text": "难看", "label": "负面"}']
    data.write_text("\n".join(rows) + "\n", "utf-8")
    done = evaluate("--task", "classify", "--data", data, "--json", tmp_path / "r.json", model_dir=demo_model_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "line 2: no label" in done.stderr
    report = json.loads((tmp_path / "r.json").read_text("utf-8"))
    assert report["rows"] == 2 and report["skipped"][0]["line"] == 2

    missing = evaluate("--task", "classify", "--data", tmp_path / "nope.jsonl")
    assert missing.returncode == 2 and "错误 Error: no labelled file" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_no_model_where_one_is_needed_is_a_calm_error(tmp_path):
    data = tmp_path / "gold.csv"
    data.write_text("text,label\n好看,正面\n", encoding="utf-8")
    done = evaluate("--task", "classify", "--data", data)
    assert done.returncode == 2 and "错误 Error: no model at /nonexistent/no-model-here" in done.stderr
    assert "Traceback" not in done.stderr
