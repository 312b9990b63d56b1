"""Measure the model on your own labelled data: accuracy / F1, latency, charts, worst errors.

    python scripts/evaluate.py --task classify --data FILE [--map MAP] [--json PATH]
                               [--predictions PATH | --save-predictions PATH] [--url URL]
    python scripts/evaluate.py --task classify --data FILE --compare A.jsonl B.jsonl
    python scripts/evaluate.py --task summarize --data tests/data/eval_lcsts_sample.jsonl --max-chars 30  # ROUGE

Runs the local engine with the appliance's settings (the settings file of the workspace that
scripts/start.sh recorded, else of $SEQGPT_WORKSPACE; environment variables and --model-dir win),
or a running appliance with --url.
--save-predictions writes each answer as it comes, and a run interrupted part way continues
from that file when started again with the same command. --predictions scores a saved file
without any model. --json writes the report, and the two charts beside it
(REPORT.confusion.png, REPORT.f1.png).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from _repo import ROOT  # first: puts the repository on sys.path

from evaluation import (
    SUMMARY_CHARS,
    EvaluationDataError,
    GoldRow,
    GoldSet,
    build_report,
    compare_markdown,
    compare_runs,
    markdown_summary,
    read_gold,
    read_map,
    read_predictions,
    run_predictions,
    write_charts,
)
from evaluation.predictions import Predict, timed
from model_loader.errors import SeqGPTError

# How long an HTTP run keeps retrying a busy (503) appliance for one row.
BUSY_RETRY_S = 300.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", required=True, choices=["classify", "extract", "summarize"])
    parser.add_argument("--data", required=True, type=Path, help="labelled JSONL or CSV file")
    parser.add_argument("--map", help="label / field map: a file of KEY=VALUE lines, or news_finance=财经,... inline")
    parser.add_argument("--json", type=Path, help="write the JSON report here, and the two PNG charts beside it")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--predictions", type=Path, help="score this predictions file; no model is loaded")
    source.add_argument("--save-predictions", type=Path,
                        help="write predictions here as they come; an interrupted run resumes from it")
    source.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"),
                        help="compare two predictions files row by row; no model is loaded")
    parser.add_argument("--url", help="evaluate a running appliance, e.g. http://127.0.0.1:7860, not the local engine")
    parser.add_argument("--model-dir", type=Path, help="local weights (default: SEQGPT_MODEL_DIR)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="local device (default: SEQGPT_DEVICE)")
    parser.add_argument("--concurrency", type=int, default=4, help="rows in flight at once (default 4)")
    parser.add_argument("--threshold", type=float, default=0.0, help="extraction confidence threshold (0 to 1)")
    parser.add_argument("--max-chars", type=int, default=SUMMARY_CHARS,
                        help="summarize: the longest summary asked for (default 30, about LCSTS's references)")
    parser.add_argument("--worst", type=int, default=10, help="how many worst errors to list (default 10)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on the terminal")
    args = parser.parse_args(argv)
    from model_loader.errors import InvalidInputError
    from model_loader.tasks.options import check_threshold

    try:
        check_threshold(args.threshold)  # the engine's own check and words, before any model loads
    except InvalidInputError as exc:
        parser.error(f"--threshold: {exc}")
    if args.concurrency < 1 or args.worst < 0:
        parser.error("--concurrency must be at least 1 and --worst at least 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        gold = read_gold(args.data, args.task, read_map(args.map))
        for bad in gold.skipped:
            print(f"跳过 skipped {args.data} line {bad.line}: {bad.reason}", file=sys.stderr)
        if args.compare:
            result = compare_runs(gold, *(read_predictions(path, gold) for path in args.compare))
            print(compare_markdown(result), end="")
            _write_json(args.json, result)
            return 0
        records = read_predictions(args.predictions, gold) if args.predictions else _predict(args, gold)
        report = build_report(gold, records, worst=args.worst)
    except (EvaluationDataError, SeqGPTError) as exc:  # a bad file, or no model where one is needed
        print(f"错误 Error: {exc}", file=sys.stderr)
        return 2
    print(markdown_summary(report), end="")
    if args.json:
        _write_json(args.json, report)
        charts = write_charts(report, args.json.with_suffix(""))
        print(f"\nreport: {args.json}; charts: {', '.join(str(path) for path in charts)}")
    return 0


def _write_json(path: Path | None, value: dict[str, Any]) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _predict(args: argparse.Namespace, gold: GoldSet) -> list[dict[str, Any]]:
    done: list[dict[str, Any]] = []
    if args.save_predictions and args.save_predictions.is_file():
        done = read_predictions(args.save_predictions, gold, partial=True)
        _drop_cut_line(args.save_predictions, len(done))
        if done:
            print(f"继续 resuming: {len(done)} of {len(gold.rows)} rows already in {args.save_predictions} "
                  "(delete it to start again)", file=sys.stderr)
    rows = gold.rows[len(done):]
    if not rows:
        return done
    if args.save_predictions:
        args.save_predictions.parent.mkdir(parents=True, exist_ok=True)
    predict, close = _http_predictor(args, gold) if args.url else _local_predictor(args, gold)
    bar = _progress(len(gold.rows), len(done), args.no_progress)
    started = time.perf_counter()
    try:
        records = run_predictions(rows, predict, args.save_predictions, args.concurrency,
                                  on_row=lambda _record: bar.update(1))
    finally:
        bar.close()
        close()
    print(f"predicted {len(rows)} rows in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return done + records


def _drop_cut_line(path: Path, keep: int) -> None:
    """Rewrite the file with only the complete lines, so that appending starts on a fresh line."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    complete = [line for line in lines if line.strip() and line.endswith("\n")][:keep]
    path.write_text("".join(complete), encoding="utf-8")


def _progress(total: int, initial: int, disabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="rows", file=sys.stderr, disable=disabled, desc="evaluating")


def _local_predictor(args: argparse.Namespace, gold: GoldSet) -> tuple[Predict, Any]:
    from model_loader import Engine, InvalidInputError, Settings
    from webui.api.schemas import classification_json, extraction_json
    from webui.kb.schemas import summary_json
    from webui.settings_file import appliance_environ

    env, settings_file = appliance_environ(ROOT)
    if settings_file is not None:
        print(f"settings: {settings_file}, where the environment does not set them", file=sys.stderr)
    settings = Settings.from_env(env)
    if args.model_dir:
        settings = dataclasses.replace(settings, model_dir=args.model_dir)
    if args.device:
        settings = dataclasses.replace(settings, device=args.device)
    engine = Engine(settings)
    print(f"loading the model from {settings.model_dir} ...", file=sys.stderr)
    engine.load()
    if engine.status.is_demo:
        print("注意 note: these are demo weights; their scores mean nothing", file=sys.stderr)

    def predict(row: GoldRow) -> dict[str, Any]:
        try:
            if gold.task == "classify":
                return timed(lambda: classification_json(engine.classify(row.text, gold.names)))
            if gold.task == "summarize":
                return timed(lambda: summary_json(engine.summarize(row.text, args.max_chars)))
            return timed(lambda: extraction_json(engine.extract(row.text, gold.names, threshold=args.threshold)))
        except InvalidInputError as exc:
            return {"error": str(exc)}

    return predict, engine.close


def _http_predictor(args: argparse.Namespace, gold: GoldSet) -> tuple[Predict, Any]:
    route = {"classify": "/api/classify", "extract": "/api/extract", "summarize": "/api/summarize"}[gold.task]
    url = args.url.rstrip("/") + route

    def predict(row: GoldRow) -> dict[str, Any]:
        body = ({"text": row.text, "labels": gold.names} if gold.task == "classify"
                else {"text": row.text, "max_chars": args.max_chars} if gold.task == "summarize"
                else {"text": row.text, "fields": gold.names, "threshold": args.threshold})
        return timed(lambda: _post(url, body))

    return predict, lambda: None


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    """One API call; 422 becomes the row's error, 503 (busy, loading) is retried after Retry-After."""
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    deadline = time.monotonic() + BUSY_RETRY_S
    while True:
        request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            answer = _json_or_text(exc.read())
            if exc.code == 422:
                return {"error": answer.get("error", str(answer))}
            if exc.code == 503 and time.monotonic() < deadline:
                time.sleep(float(exc.headers.get("Retry-After") or 2))
                continue
            raise SystemExit(f"错误 Error: {url} answered {exc.code}: {answer.get('error', answer)}") from None
        except urllib.error.URLError as exc:
            raise SystemExit(f"错误 Error: cannot reach {url} ({exc.reason}): is the appliance running?") from None


def _json_or_text(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {"error": raw.decode("utf-8", "replace")[:200]}
    return value if isinstance(value, dict) else {"error": str(value)}


if __name__ == "__main__":
    sys.exit(main())
