"""Latency under load: short work passes long work, too long a wait is refused at once, abandoned work is dropped."""

from __future__ import annotations

import contextvars
import dataclasses
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from model_loader import decoding
from model_loader.backends.bench import BenchSwitches
from model_loader.backends.fast import FastBackend
from model_loader.batching.scheduling import (
    ABANDONED,
    CALL_STRETCH,
    PRIOR_FIELD_STEPS,
    SLICE_S,
    AnswerSteps,
    WorkRate,
    call_work,
    order,
    pick_batch,
    wait_ahead,
)
from model_loader.decoding import FieldAnswer
from model_loader.errors import AbandonedError, OverloadedError
from model_loader.model.bloom import BloomRunner
from model_loader.tasks.pieces import ClassifyPiece, ExtractPiece, steps_taken

FIELDS = ["人名", "地址", "组织机构", "公司名称", "时间"]
SHORT = ("温格的球队终于又踢了一场经典的比赛。", ["体育", "财经"])


@dataclasses.dataclass
class Job:
    payload: object
    work: float
    queued_at: float
    shared: float = 0.0


# ---- the scheduler's choice, without a model -------------------------------------------------


def test_the_least_work_runs_first_and_a_long_job_moves_up_as_it_waits():
    rate, now = WorkRate(0.001), 1000.0  # 5,000 units: 5 s; 50 units: 0.05 s
    long_new = Job("long", 5000, now - 1)
    short = Job("short", 50, now)
    assert order([long_new, short], now, rate) == [short, long_new]
    long_old = Job("long", 5000, now - 30)  # 30 s of waiting count as 7.5 s less work
    assert order([long_new, short, long_old], now, rate) == [long_old, short, long_new]


def test_a_call_takes_jobs_of_its_kind_and_size_up_to_the_slice():
    rate, now = WorkRate(0.001), 1000.0
    small = [Job(i, 100, now + i) for i in range(3)]
    big = Job("other", 150, now)  # another kind: never in the same call
    huge = Job(1, 1000, now)  # over twice the first's work
    assert pick_batch([*small, big, huge], now, max_batch=8, rate=rate) == small
    per_job = CALL_STRETCH * SLICE_S / 2.5 / rate.seconds(int, 1)  # 2.5 jobs' work fill a call
    many = [Job(1, per_job, now) for _ in range(5)]
    assert pick_batch(many, now, max_batch=8, rate=rate) == many[:2]
    # Free prompts share their decode steps: a call of eight costs their prompts and one answer's steps.
    prompts = [Job("gen", 900, now, shared=640) for _ in range(8)]  # 2.7 s each alone at 3 ms a unit
    three_ms = WorkRate(0.003)
    assert call_work(prompts) == 8 * 260 + 640
    assert pick_batch(prompts, now, max_batch=8, rate=three_ms) == prompts  # 8.2 s: within three times 4 s
    more = [Job("gen", 900, now, shared=640) for _ in range(16)]
    assert len(pick_batch(more, now, max_batch=16, rate=three_ms)) == 12  # the 13th would pass 12 s
    # Admission counts the wait ahead as those calls, not as each job alone: 8.2 s, not 8 x 2.7 s.
    assert wait_ahead(prompts, 10.0, three_ms, now, 0.0, max_batch=8) == pytest.approx(8.16)
    assert wait_ahead(prompts, 10.0, three_ms, now, 0.0, max_batch=4) == pytest.approx(2 * (4 * 260 + 640) * 0.003)
    assert pick_batch(small, now, max_batch=2, rate=rate) == small[:2]
    # A long job that waited long enough runs first; a short one stays out of its call, which would
    # answer it only at its end: it keeps its own place, first in the next call.
    aged_long = Job(1, 1000, now - 100)
    assert pick_batch([aged_long, *small], now, max_batch=8, rate=rate) == [aged_long]


def test_extraction_steps_are_learnt_from_the_fields_answers():
    steps = AnswerSteps()
    assert steps.expected() == PRIOR_FIELD_STEPS
    answers = [FieldAnswer(tokens=[1, 2, 3]), FieldAnswer(tokens=[4]), FieldAnswer()]
    assert steps_taken(answers, limit=128) == 4, "the longest answer and the step that ended it"
    assert steps_taken([FieldAnswer(tokens=list(range(128)))], limit=128) == 128, "one that ran to the limit"
    for _ in range(30):
        steps.observe(4)
    assert steps.expected() == pytest.approx(4, abs=0.01)


def test_the_rate_is_learnt_per_kind_from_finished_runs():
    rate = WorkRate(1.0)
    rate.observe(ClassifyPiece, 100, 2.0)
    assert rate.seconds(ClassifyPiece, 50) == pytest.approx(1.0)
    assert rate.seconds(ExtractPiece, 50) == pytest.approx(50.0), "another kind keeps the prior"


# ---- the engine on demo weights -------------------------------------------------------------


@pytest.fixture
def held(engine, monkeypatch) -> Iterator[dict]:
    """The model worker held inside a first call until released; records every later call's kind and size."""
    started, release = threading.Event(), threading.Event()
    calls: list[tuple[str, int]] = []
    answer = FastBackend.pieces

    def hold(backend, pieces):
        if not started.is_set():
            started.set()
            release.wait(timeout=60)
        else:
            calls.append((type(pieces[0]).__name__, len(pieces)))
        return answer(backend, pieces)

    monkeypatch.setattr(FastBackend, "pieces", hold)
    with ThreadPoolExecutor(12) as pool:
        first = pool.submit(engine.classify, *SHORT)
        assert started.wait(timeout=10)
        yield {"pool": pool, "release": release, "calls": calls}
        release.set()
        assert first.result(timeout=60).label in SHORT[1]


def wait_until_queued(engine, count: int) -> None:
    deadline = time.monotonic() + 30
    while engine.queue_depth < count:
        assert time.monotonic() < deadline, f"only {engine.queue_depth} of {count} jobs queued"
        time.sleep(0.01)


def fix_the_rate(engine, monkeypatch) -> None:
    """One rate for every kind, kept fixed: the held first call's time is the test's hold, not the model's,
    and rates learnt by earlier tests would make the order depend on which ran before. At 10 ms a unit
    a long piece is seconds of work, so the seconds its request took to prepare on a loaded machine
    (ageing: a quarter of the wait) cannot rank it before the short request."""
    fixed = WorkRate(0.01)
    monkeypatch.setattr(fixed, "observe", lambda *_: None)
    monkeypatch.setattr(engine._batcher, "rate", fixed)


def finishing_in(finished: list[str]):
    """A runner of ``fn(*args)`` that notes ``name`` in ``finished`` once it returns."""

    def timed(name: str, fn, *args):
        result = fn(*args)
        finished.append(name)
        return result

    return timed


def test_a_short_request_queued_behind_long_ones_finishes_first(engine, held, long_chinese_text, monkeypatch):
    # Answers of at most 16 tokens keep the long requests to seconds on demo weights; no wait limit, since
    # the fixed rate below makes the queued long pieces minutes of work.
    shorter = dataclasses.replace(engine.settings, extract_max_new_tokens=16, max_wait_s=0)
    monkeypatch.setattr(engine, "settings", shorter)
    monkeypatch.setattr(engine.model.backend, "settings", shorter)
    fix_the_rate(engine, monkeypatch)
    pool, finished = held["pool"], []
    timed = finishing_in(finished)
    longs = [pool.submit(timed, f"long {i}", engine.extract, long_chinese_text, FIELDS) for i in range(3)]
    wait_until_queued(engine, 3 * 2)  # every long text is several pieces
    short = pool.submit(timed, "short", engine.classify, *SHORT)
    wait_until_queued(engine, 3 * 2 + 1)
    held["release"].set()
    assert short.result(timeout=120).label in SHORT[1]
    for future in longs:
        assert future.result(timeout=300).pieces > 1
    assert finished[0] == "short", finished
    assert held["calls"][0] == ("ClassifyPiece", 1), "the short piece ran in the first call after the hold"


def test_a_short_extraction_queued_behind_long_ones_runs_in_a_call_of_its_own_first(
    engine, held, long_chinese_text, monkeypatch
):
    """Fields may write 128 tokens but answer in a few: counted at the limit, every extraction piece
    looked alike, and a 20-character extraction joined the long texts' call and waited for all of it."""
    monkeypatch.setattr(engine.model.backend, "bench", BenchSwitches(exact_field_tokens=8))  # seconds, not minutes
    monkeypatch.setattr(engine, "_field_steps", AnswerSteps())  # what earlier tests taught it stays out
    monkeypatch.setattr(engine, "settings", dataclasses.replace(engine.settings, max_wait_s=0))  # ordering only
    fix_the_rate(engine, monkeypatch)
    pool, finished = held["pool"], []
    timed = finishing_in(finished)
    longs = [pool.submit(timed, f"long {i}", engine.extract, long_chinese_text, FIELDS) for i in range(2)]
    wait_until_queued(engine, 2 * 2)
    short = pool.submit(timed, "short", engine.extract, SHORT[0], FIELDS)
    wait_until_queued(engine, 2 * 2 + 1)
    held["release"].set()
    assert short.result(timeout=120).pieces == 1
    for future in longs:
        assert future.result(timeout=300).pieces > 1
    assert held["calls"][0] == ("ExtractPiece", 1), held["calls"]
    assert finished[0] == "short", finished
    assert engine._field_steps.expected() < PRIOR_FIELD_STEPS, "the 8 steps each piece took were learnt"


def test_a_request_whose_wait_would_pass_the_limit_is_refused_at_once_without_running(
    engine, held, long_chinese_text, monkeypatch
):
    monkeypatch.setattr(engine, "settings", dataclasses.replace(engine.settings, max_wait_s=2))
    # One second per unit of work: the long text's pieces queue minutes of work.
    monkeypatch.setattr(engine._batcher, "rate", WorkRate(1.0))
    pool = held["pool"]
    queued = pool.submit(engine.extract, long_chinese_text, FIELDS)  # alone in the queue: admitted
    try:
        wait_until_queued(engine, 2)
    except AssertionError:
        raise AssertionError(repr(queued.exception(timeout=1))) from None
    depth = engine.queue_depth
    with pytest.raises(OverloadedError) as refused:
        engine.extract(long_chinese_text, FIELDS)
    assert refused.value.retry_after_s > 2 and "SEQGPT_MAX_WAIT_S" in str(refused.value)
    assert engine.queue_depth == depth, "nothing of the refused request was queued"
    # The status bar's wait: all the queued work, so at least what was ahead of the refused request.
    assert engine.queued_seconds >= refused.value.retry_after_s - 1
    # A short request would run before the long pieces: its wait is short, so it is admitted.
    short = pool.submit(engine.classify, *SHORT)
    held["release"].set()
    assert short.result(timeout=120).label in SHORT[1]
    queued.result(timeout=300)
    assert engine.queued_seconds == 0.0, "nothing queued, nothing running: no wait"


def test_an_abandoned_request_is_answered_at_once_and_its_queued_work_never_runs(engine, held, long_chinese_text):
    gone = threading.Event()
    dropped_before = engine._batcher.dropped

    def abandoned_extract():
        ABANDONED.set(gone)
        return engine.extract(long_chinese_text, FIELDS)

    request = held["pool"].submit(contextvars.copy_context().run, abandoned_extract)
    wait_until_queued(engine, 2)
    pieces = engine.queue_depth
    gone.set()
    with pytest.raises(AbandonedError):
        request.result(timeout=5)
    held["release"].set()
    deadline = time.monotonic() + 30
    while engine._batcher.dropped < dropped_before + pieces:
        assert time.monotonic() < deadline, "the abandoned pieces were not dropped"
        time.sleep(0.05)
    assert not any(kind == "ExtractPiece" for kind, _ in held["calls"]), "no piece of it ran"


def test_a_short_request_is_answered_between_two_steps_of_a_long_answer(engine, monkeypatch):
    """A free prompt writing 250 tokens is one call of the model worker; a classification sent while
    it writes runs between two of its steps, and the long answer is the one it gives alone."""
    monkeypatch.setattr(engine.model.backend, "bench", BenchSwitches(ignore_eos=True))  # all 250 tokens
    prompt = "请写一段关于秋天的短文。"
    alone = engine.generate(prompt, max_new_tokens=250)
    assert alone.new_tokens == 250
    # Demo weights write a token in about a millisecond: 20 ms more per step (5 s in all) make the answer take
    # seconds on any machine, so the short request surely arrives while it is being written.
    step = BloomRunner.extend
    monkeypatch.setattr(BloomRunner, "extend", lambda *args: (time.sleep(0.02), step(*args))[1])
    order: list[str] = []
    with ThreadPoolExecutor(2) as pool:
        long = pool.submit(lambda: (engine.generate(prompt, max_new_tokens=250), order.append("long"))[0])
        deadline = time.monotonic() + 30
        while engine._batcher.running_for() is None:  # the long answer is being written
            assert time.monotonic() < deadline and not long.done(), "the long request never ran"
            time.sleep(0.005)
        short = pool.submit(lambda: (engine.classify(*SHORT), order.append("short"))[0])
        assert short.result(timeout=60).label in SHORT[1]
        assert long.result(timeout=120) == alone, "running short work beside it changed nothing of it"
    assert order == ["short", "long"], order


def test_a_short_request_is_answered_between_two_prompts_of_a_long_calls_prefill(
    engine, long_chinese_text, monkeypatch
):
    """A long text's pieces are prefilled one prompt after another in one call, seconds of work before
    its first decode step; a classification sent meanwhile runs between two of those prompts."""
    monkeypatch.setattr(engine.model.backend, "bench", BenchSwitches(exact_field_tokens=4))
    alone = engine.extract(long_chinese_text, FIELDS)
    assert alone.pieces >= 3
    # What the model worker does, in its order: a prompt prefilled, the short request's label tree,
    # the fields of a group starting to decode. Demo weights run a prompt in milliseconds: half a
    # second more each makes the prefill take seconds.
    events: list[str] = []
    run_alone, run_tree, rows = BloomRunner._run_alone, BloomRunner.run_tree, decoding.RowCache

    def slow_prompt(*args):
        time.sleep(0.5)
        events.append("prompt")
        return run_alone(*args)

    class FieldRows:
        @staticmethod
        def empty(*args):
            events.append("fields")
            return rows.empty(*args)

    monkeypatch.setattr(BloomRunner, "_run_alone", slow_prompt)
    monkeypatch.setattr(BloomRunner, "run_tree", lambda *args: (events.append("short"), run_tree(*args))[1])
    monkeypatch.setattr(decoding, "RowCache", FieldRows)
    with ThreadPoolExecutor(2) as pool:
        long = pool.submit(engine.extract, long_chinese_text, FIELDS)
        deadline = time.monotonic() + 30
        while not events:  # the first prompt of the long call is in
            assert time.monotonic() < deadline and not long.done(), "the long request never ran"
            time.sleep(0.005)
        assert engine.classify(*SHORT).label in SHORT[1]
        assert long.result(timeout=120) == alone, "running short work inside its prefill changed nothing of it"
    assert "short" in events and events.index("short") < events.index("fields"), events
