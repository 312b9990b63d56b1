"""Soak test: drive a running appliance with N clients for T minutes and watch its memory.

    python scripts/soak.py http://127.0.0.1:7860 [--clients 8] [--minutes 30] [--json PATH]

Starts nothing itself. Each client sends, one after another, a realistic mix of requests:
classification, extraction and free prompts on Chinese news, contract and ticket texts
(mixed with English and digits) of 40, 120, 300, 800 or 3,000 characters, built from scripts/data/soak_texts.jsonl,
and now and then a deliberately bad request (empty text, no labels, a text over the limit,
broken JSON, a wrong type, an unknown route, a wrong method) that must get its 4xx answer.
Meanwhile it samples the resident memory (RSS) of the app process and its children, found
through Supervisor (``supervisorctl pid seqgpt560m`` with the same SEQGPT_WORKSPACE as
scripts/start.sh) or given with ``--pid``.

A client gives up on a request after ``--timeout`` seconds (120, as a person would) and counts it
as given up. A 503 with Retry-After is the appliance refusing work it cannot start soon: it is
counted as shed, not as an error, and the client waits the Retry-After before its next request.
Short requests (texts of at most 120 characters) get their own p50/p95 beside the rest.

It prints the requests, the errors by kind (deliberate bad requests counted apart), p50/p95
latency, RSS after warm-up and at the end of the load, the growth between them in percent, the
peak, and RSS once the last requests have drained. Growth is measured between samples taken
while every client is still sending: the first one after warm-up and the last one before the
clients stop. A sample after they stop would measure the drained app, not growth under load.
Under load the RSS swings by a few hundred MB with the batch in flight, so two single samples
can differ by 10% with no trend at all; the medians of the first and last ``--window`` minutes
under load, and their growth, are printed beside them.
The exit status is 1 when any request failed other than as intended, or was given up on.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from _repo import ROOT  # noqa: E402  (the repository root, one definition for every script)
from app_memory import app_pid, sample_memory  # beside this script

TEXTS = ROOT / "scripts" / "data" / "soak_texts.jsonl"

CLASS_LABELS = {
    "news": ["财经", "体育", "科技", "社会", "国际", "娱乐", "教育", "天气"],
    "contract": ["采购合同", "服务合同", "租赁合同", "借款合同", "许可协议", "劳动合同"],
    "ticket": ["物流", "质量问题", "退款", "技术故障", "投诉", "维修预约"],
}
FIELDS = {
    "news": ["人名", "地名", "公司名称", "时间", "金额"],
    "contract": ["甲方", "乙方", "金额", "日期", "合同编号", "地址"],
    "ticket": ["工单号", "客户", "产品", "订单号", "问题", "时间"],
}
# Share of each kind of request in the mix; the rest up to 1.0 are deliberately bad.
MIX = {"classify": 0.38, "extract": 0.38, "generate": 0.16}
LENGTHS = (40, 120, 300, 800, 3000)  # characters of a request's text, each as likely
SHORT_CHARS = 120  # texts up to this long are short requests, whose latency is reported apart
PROMPT_MAX_CHARS = 600  # a free prompt must fit the model's 1,024-token window with room to answer


@dataclass
class Outcome:
    task: str
    seconds: float
    error: str | None = None  # None: answered as intended
    deliberate: bool = False
    chars: int = 0  # the length of the request's text
    shed: bool = False  # refused with 503 and Retry-After: not an error
    gave_up: bool = False  # no answer within the client's patience


@dataclass
class Tally:
    outcomes: list[Outcome] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)

    def snapshot(self) -> list[Outcome]:
        with self.lock:
            return list(self.outcomes)


class Texts:
    """Texts of a chosen length, made of consecutive paragraphs of one kind."""

    def __init__(self, path: Path) -> None:
        self.by_kind: dict[str, list[str]] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                self.by_kind.setdefault(row["kind"], []).append(row["text"])

    def make(self, rng: random.Random, length: int) -> tuple[str, str]:
        kind = rng.choice(sorted(self.by_kind))
        paragraphs = self.by_kind[kind]
        start, text = rng.randrange(len(paragraphs)), ""
        while len(text) < length:
            text += paragraphs[start % len(paragraphs)] + "\n"
            start += 1
        return kind, text[:length].strip()


def text_length(rng: random.Random) -> int:
    """One of LENGTHS, each as likely."""
    return rng.choice(LENGTHS)


def post(url: str, body: bytes | None, timeout: float, method: str = "POST") -> tuple[int, dict, float | None]:
    """Status, JSON answer and Retry-After (seconds, None when absent)."""
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}"), None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        retry = exc.headers.get("Retry-After")
        retry_after = float(retry) if retry and retry.replace(".", "", 1).isdigit() else None
        try:
            return exc.code, json.loads(raw or b"{}"), retry_after
        except ValueError:
            return exc.code, {"raw": raw[:200].decode("utf-8", "replace")}, retry_after


def good_request(rng: random.Random, texts: Texts, task: str) -> tuple[str, dict]:
    kind, text = texts.make(rng, text_length(rng))
    if task == "classify":
        labels = rng.sample(CLASS_LABELS[kind], rng.randint(2, len(CLASS_LABELS[kind])))
        return "/api/classify", {"text": text, "labels": labels}
    if task == "extract":
        fields = rng.sample(FIELDS[kind], rng.randint(2, len(FIELDS[kind])))
        return "/api/extract", {"text": text, "fields": "，".join(fields)}
    joined = "，".join(rng.sample(CLASS_LABELS[kind], 3))
    prompt = f"输入: {text[:PROMPT_MAX_CHARS]}\n分类: {joined}\n输出:"
    return "/api/generate", {"prompt": prompt, "max_new_tokens": rng.choice([8, 16, 32])}


def check_answer(task: str, sent: dict, answer: dict) -> str | None:
    """What is wrong with a 200 answer, by the invariants that hold for any weights; None if nothing."""
    if "request_id" not in answer:
        return "no request_id"
    if task == "classify":
        labels = sent["labels"]
        if answer.get("label") not in labels or set(answer.get("scores", {})) != set(labels):
            return "label outside the label set"
    elif task == "extract":
        text = sent["text"]
        for mentions in answer.get("fields", {}).values():
            for m in mentions:
                if text[m["start"] : m["end"]] != m["text"]:
                    return "mention not at its offsets"
    elif not isinstance(answer.get("text"), str):
        return "no generated text"
    return None


def bad_request(rng: random.Random, base: str) -> tuple[str, str, bytes, int]:
    """(name, method and url, body, the status it must get)."""
    too_long = "长" * 20_001
    cases = [
        ("empty text", "/api/classify", {"text": "  ", "labels": ["财经", "体育"]}, 422),
        ("no labels", "/api/classify", {"text": "小米集团发布新手机。", "labels": []}, 422),
        ("text over the limit", "/api/extract", {"text": too_long, "fields": ["人名"]}, 422),
        ("wrong type", "/api/extract", {"text": 12345, "fields": ["人名"]}, 422),
        ("max_new_tokens out of range", "/api/generate", {"prompt": "输入: 你好\n输出:", "max_new_tokens": 0}, 422),
        ("broken JSON", "/api/classify", None, 422),
        ("unknown route", "/api/translate", {"text": "你好"}, 404),
        ("wrong method", "/api/classify", "GET", 405),
    ]
    name, path, body, status = rng.choice(cases)
    if body == "GET":
        return name, f"GET {base}{path}", b"", status
    raw = b'{"text": "unterminated' if body is None else json.dumps(body, ensure_ascii=False).encode()
    return name, f"POST {base}{path}", raw, status


def client(base: str, texts: Texts, seed: int, until: float, timeout: float, tally: Tally) -> None:
    rng = random.Random(seed)
    while time.monotonic() < until:
        roll, started = rng.random(), time.perf_counter()
        if roll >= sum(MIX.values()):
            name, target, body, want = bad_request(rng, base)
            method, url = target.split(" ", 1)
            try:
                status, _, _ = post(url, body if method == "POST" else None, timeout, method)
                error = None if status == want else f"bad request ({name}) answered {status}, not {want}"
            except OSError as exc:
                error = f"bad request ({name}): {type(exc).__name__}"
            tally.add(Outcome("bad", time.perf_counter() - started, error, deliberate=True))
            continue
        task = next(t for t, share in _cumulative() if roll < share)
        path, payload = good_request(rng, texts, task)
        chars = len(payload.get("text", payload.get("prompt", "")))
        shed = gave_up = False
        retry_after: float | None = None
        try:
            status, answer, retry_after = post(base + path, json.dumps(payload, ensure_ascii=False).encode(), timeout)
            shed = status == 503 and retry_after is not None
            error = None if shed else f"HTTP {status}" if status != 200 else check_answer(task, payload, answer)
            if error and status != 200 and answer.get("error"):
                error += f": {str(answer['error'])[:80]}"
        except TimeoutError:
            error, gave_up = f"gave up after {timeout:g} s", True
        except OSError as exc:
            if isinstance(getattr(exc, "reason", None), TimeoutError):
                error, gave_up = f"gave up after {timeout:g} s", True
            else:
                error = f"connection: {type(exc).__name__}"
        tally.add(Outcome(task, time.perf_counter() - started, error, chars=chars, shed=shed, gave_up=gave_up))
        if shed and retry_after:  # as the answer asked, but never past the end of the run
            time.sleep(max(0.0, min(retry_after, until - time.monotonic())))


def _cumulative() -> list[tuple[str, float]]:
    total, out = 0.0, []
    for task, share in MIX.items():
        total += share
        out.append((task, total))
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def summarise(
    outcomes: list[Outcome], samples: list[tuple[float, float]], load_seconds: float, args: argparse.Namespace
) -> dict:
    """The figures of a run; ``samples`` are (seconds, MB) and the clients sent requests until ``load_seconds``."""
    good = [o for o in outcomes if not o.deliberate]
    bad = [o for o in outcomes if o.deliberate]
    errors: dict[str, int] = {}
    for o in good:
        if o.error and not o.gave_up:
            errors[o.error] = errors.get(o.error, 0) + 1
    bad_errors: dict[str, int] = {}
    for o in bad:
        if o.error:
            bad_errors[o.error] = bad_errors.get(o.error, 0) + 1
    warm_at = args.warmup * 60
    under_load = [(t, mb) for t, mb in samples if warm_at <= t < load_seconds] or samples[-1:]
    after_warmup, end = under_load[0][1], under_load[-1][1]
    window = args.window * 60
    first_window = statistics.median(mb for t, mb in under_load if t < under_load[0][0] + window)
    last_window = statistics.median(mb for t, mb in under_load if t >= under_load[-1][0] - window)
    latency = {
        task: {"requests": len(times), "p50_s": percentile(times, 0.5), "p95_s": percentile(times, 0.95)}
        for task in MIX
        if (times := [o.seconds for o in good if o.task == task and not o.error and not o.shed])
    }
    ok_times = [o.seconds for o in good if not o.error and not o.shed]
    answered = [o for o in good if not o.error and not o.shed]
    short_times = [o.seconds for o in answered if o.chars <= SHORT_CHARS]
    long_times = [o.seconds for o in answered if o.chars > SHORT_CHARS]
    return {
        "url": args.url,
        "clients": args.clients,
        "minutes": args.minutes,
        "warmup_minutes": args.warmup,
        "requests": len(outcomes),
        "good_requests": len(good),
        "errors": sum(errors.values()),
        "errors_by_kind": errors,
        "deliberate_bad_requests": len(bad),
        "deliberate_bad_answered_wrongly": bad_errors,
        "shed": sum(1 for o in good if o.shed),
        "gave_up": sum(1 for o in good if o.gave_up),
        "longest_wait_s": max((o.seconds for o in good), default=0.0),
        "p50_s": percentile(ok_times, 0.5),
        "p95_s": percentile(ok_times, 0.95),
        "short_requests": len(short_times),
        "short_p50_s": percentile(short_times, 0.5),
        "short_p95_s": percentile(short_times, 0.95),
        "long_p95_s": percentile(long_times, 0.95),
        "latency_by_task": latency,
        "rss_mb_first": samples[0][1],
        "rss_mb_after_warmup": after_warmup,
        "rss_mb_end": end,  # the last sample under load
        "rss_end_at_s": under_load[-1][0],
        "rss_growth_percent": 100 * (end - after_warmup) / after_warmup,
        "window_minutes": args.window,
        "rss_mb_median_first_window": first_window,
        "rss_mb_median_last_window": last_window,
        "rss_growth_percent_medians": 100 * (last_window - first_window) / first_window,
        "rss_mb_peak": max(mb for _, mb in samples),
        "rss_mb_drained": samples[-1][1],  # after the last requests were answered
        "load_seconds": load_seconds,
        "rss_samples": [[round(t, 1), round(mb, 1)] for t, mb in samples],
    }


def print_summary(s: dict) -> None:
    print(f"\nrequests: {s['requests']} ({s['good_requests']} real, {s['deliberate_bad_requests']} deliberately bad)")
    for task, figures in s["latency_by_task"].items():
        print(
            f"  {task:<9} {figures['requests']:>5} answered   "
            f"p50 {figures['p50_s']:.2f} s   p95 {figures['p95_s']:.2f} s"
        )
    print(
        f"short requests (<= {SHORT_CHARS} chars): {s['short_requests']} answered, p50 {s['short_p50_s']:.2f} s, "
        f"p95 {s['short_p95_s']:.2f} s; longer ones p95 {s['long_p95_s']:.2f} s"
    )
    print(f"shed (503 with Retry-After): {s['shed']}; given up after the client's timeout: {s['gave_up']}")
    print(f"errors: {s['errors']}")
    for kind, count in sorted(s["errors_by_kind"].items(), key=lambda kv: -kv[1]):
        print(f"  {count:>5}  {kind}")
    wrong = sum(s["deliberate_bad_answered_wrongly"].values())
    print(f"deliberate bad requests answered other than intended: {wrong}")
    for kind, count in s["deliberate_bad_answered_wrongly"].items():
        print(f"  {count:>5}  {kind}")
    print(
        f"soak: {s['clients']} clients, {s['minutes']:g} min: {s['requests']} requests, {s['errors']} errors "
        f"(+{s['deliberate_bad_requests']} deliberate bad, {wrong} answered wrongly), {s['shed']} shed, "
        f"{s['gave_up']} given up, longest wait {s['longest_wait_s']:.0f} s, "
        f"p50 {s['p50_s']:.2f} s, p95 {s['p95_s']:.2f} s, short p95 {s['short_p95_s']:.2f} s; "
        f"RSS {s['rss_mb_first']:.0f} MB at start, "
        f"{s['rss_mb_after_warmup']:.0f} MB after {s['warmup_minutes']:g} min warm-up, {s['rss_mb_end']:.0f} MB "
        f"at the end of the load ({s['rss_growth_percent']:+.1f}%), peak {s['rss_mb_peak']:.0f} MB, "
        f"{s['rss_mb_drained']:.0f} MB drained; medians of the first and last {s['window_minutes']:g} min under load "
        f"{s['rss_mb_median_first_window']:.0f} and {s['rss_mb_median_last_window']:.0f} MB "
        f"({s['rss_growth_percent_medians']:+.1f}%)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="the running appliance, e.g. http://127.0.0.1:7860")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, help="minutes before the RSS baseline (default: a fifth of the run)")
    parser.add_argument("--pid", type=int, help="the app's pid (default: asked from Supervisor)")
    parser.add_argument(
        "--workspace",
        help="SEQGPT_WORKSPACE of scripts/start.sh, to find the pid (default: the one start.sh recorded, "
        "else $SEQGPT_WORKSPACE, else logs/)",
    )
    parser.add_argument("--sample-seconds", type=float, default=5.0, help="how often RSS is read")
    parser.add_argument(
        "--window", type=float, default=5.0, help="minutes at each end of the load whose median RSS is compared"
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds a client waits for an answer before it gives up"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the summary (and every RSS sample) here")
    args = parser.parse_args()
    args.url = args.url.rstrip("/")
    if args.warmup is None:
        args.warmup = args.minutes / 5
    pid = args.pid or app_pid(args.workspace)
    texts = Texts(TEXTS)
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    started = time.monotonic()
    sampler = threading.Thread(
        target=sample_memory, args=(pid, args.sample_seconds, started, stop, samples), daemon=True
    )
    sampler.start()
    tally = Tally()
    until = started + args.minutes * 60
    clients = [
        threading.Thread(target=client, args=(args.url, texts, args.seed * 1000 + i, until, args.timeout, tally))
        for i in range(args.clients)
    ]
    print(f"soak: {args.clients} clients for {args.minutes:g} min against {args.url}, app pid {pid}", flush=True)
    for thread in clients:
        thread.start()
    while any(thread.is_alive() for thread in clients):
        time.sleep(min(60.0, args.minutes * 60 / 10 + 1))
        done = tally.snapshot()
        failed = sum(1 for o in done if o.error and not o.deliberate)
        shed = sum(1 for o in done if o.shed)
        print(
            f"  {len(done)} requests, {failed} errors or given up, {shed} shed, RSS {samples[-1][1]:.0f} MB",
            flush=True,
        )
    stop.set()
    sampler.join()
    summary = summarise(tally.snapshot(), samples, until - started, args)
    print_summary(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    wrong = sum(summary["deliberate_bad_answered_wrongly"].values())
    return 1 if summary["errors"] or summary["gave_up"] or wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
