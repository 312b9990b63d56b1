"""The engine on demo weights: invariants that hold for any weights (SPEC §5, §6)."""

from __future__ import annotations

import math
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import model_loader.backends.fast as fast_backend
import model_loader.batching.cache_groups as cache_groups
import model_loader.decoding as decoding
import model_loader.engine as engine_module
from model_loader import Classification, Engine, Extraction, Generation, ModelNotReadyError, Settings
from model_loader.backends import FastBackend
from model_loader.backends.bench import BenchSwitches
from model_loader.decoding import FieldAnswer
from model_loader.text.prompts import complete_free_prompt

ZH_NEWS = ["财经", "体育", "科技", "娱乐", "教育", "军事", "汽车", "旅游", "游戏", "房产"]
ZH_LABELS = [*ZH_NEWS, "正面", "负面", "中性", "投诉"]
EN_LABELS = ["sports", "finance", "technology", "entertainment", "politics", "positive", "negative", "neutral"]
MIXED_LABELS = ["科技 tech", "AI新闻", "5G通信", "NBA篮球"]
PREFIX_PAIRS = [
    ("财经", "财经新闻"),
    ("体育", "体育赛事"),
    ("科技", "科技公司"),
    ("正面", "正面评价"),
    ("sports", "sports news"),
    ("tech", "technology"),
]


def random_label_sets(count: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    pool = ZH_LABELS + EN_LABELS + MIXED_LABELS
    sets = []
    for i in range(count):
        size = [1, 1, 2, 3, 4, 5, 8][i % 7]
        labels = rng.sample(pool, size)
        if i % 3 == 0:
            labels = [*rng.choice(PREFIX_PAIRS), *labels]
        labels = list(dict.fromkeys(labels))
        rng.shuffle(labels)
        sets.append(labels)
    return sets


def occurrences(text: str, mention: str) -> set[tuple[int, int]]:
    return {(m.start(), m.end()) for m in re.finditer(re.escape(mention), text)}


def assert_mentions_index_text(result: Extraction, text: str) -> None:
    for mentions in result.fields.values():
        for mention in mentions:
            assert text[mention.start : mention.end] == mention.text
            assert 0.0 <= mention.score <= 1.0


def assert_valid_classification(result: Classification, labels: list[str]) -> None:
    assert result.label in labels
    assert list(result.scores) == labels
    assert math.isclose(sum(result.scores.values()), 1.0, abs_tol=1e-6)
    assert all(0.0 <= p <= 1.0 for p in result.scores.values())
    assert result.scores[result.label] == max(result.scores.values())


# ---- lifecycle -------------------------------------------------------------------------------


def test_loaded_demo_engine_reports_ready_demo_weights(engine, demo_dir):
    status = engine.status
    assert status.ready and status.state == "ready"
    assert status.is_demo is True
    assert status.error is None
    assert status.device == "cpu"
    assert status.dtype in ("float32", "bfloat16", "float16")
    assert status.model_dir == str(demo_dir)
    assert status.load_seconds is not None and status.load_seconds >= 0


def test_health_check_passes_on_a_loaded_model(engine):
    assert engine.health_check() is None


@pytest.fixture
def long_batch(engine, monkeypatch):
    """A batch that holds the model worker until released, standing in for a long CPU batch."""
    started, release = threading.Event(), threading.Event()
    answer = FastBackend.pieces  # a text's pieces run one job each (tasks/pieces.py)

    def hold(backend, pieces):
        started.set()
        release.wait(timeout=30)
        return answer(backend, pieces)

    monkeypatch.setattr(FastBackend, "pieces", hold)
    with ThreadPoolExecutor(1) as pool:
        done = pool.submit(engine.classify, "温格的球队终于又踢了一场经典的比赛。", ["体育", "财经"])
        assert started.wait(timeout=5)
        yield
        release.set()
        assert done.result(timeout=5).label in ("体育", "财经")


def test_health_check_answers_at_once_while_a_batch_runs(engine, long_batch):
    started = time.monotonic()
    engine.health_check()
    assert time.monotonic() - started < 1.0, "the check must not queue behind the running batch"


def test_a_batch_running_longer_than_any_request_may_wait_fails_the_health_check(
    engine, long_batch, monkeypatch
):
    time.sleep(0.1)
    monkeypatch.setattr(engine_module, "REQUEST_TIMEOUT_S", 0.05)
    with pytest.raises(ModelNotReadyError, match="running for"):
        engine.health_check()


def test_engine_does_not_load_the_model_when_constructed(demo_dir):
    fresh = Engine(Settings(model_dir=demo_dir))
    assert fresh.status.state == "idle" and not fresh.status.ready


def test_reloading_a_loaded_engine_keeps_giving_the_same_answers(demo_dir):
    eng = Engine(Settings(model_dir=demo_dir))
    eng.load()
    try:
        before = eng.classify("温格的球队终于又踢了一场经典的比赛。", ["体育", "财经", "科技"])
        eng.load()
        assert eng.status.ready
        assert eng.classify("温格的球队终于又踢了一场经典的比赛。", ["体育", "财经", "科技"]) == before
    finally:
        eng.close()


def test_closed_engine_reports_not_ready_and_refuses_requests(demo_dir):
    eng = Engine(Settings(model_dir=demo_dir))
    eng.load()
    eng.close()
    assert not eng.status.ready, "a closed engine must not tell /health it is ready"
    with pytest.raises(ModelNotReadyError):
        eng.classify("温格的球队。", ["体育"])


# ---- classification --------------------------------------------------------------------------


def test_random_label_sets_cover_prefixes_single_labels_and_mixed_scripts():
    sets = random_label_sets(50, seed=1234)
    assert sum(len(s) == 1 for s in sets) >= 5
    assert sum(any(a in s and b in s for a, b in PREFIX_PAIRS) for s in sets) >= 10
    assert sum(any(label in EN_LABELS for label in s) and any(label in ZH_LABELS for label in s) for s in sets) >= 5


def test_classify_answers_a_given_label_with_scores_summing_to_one_for_50_random_label_sets(
    engine_by_weights, headline_texts
):
    engine = engine_by_weights
    rng = random.Random(99)
    for labels in random_label_sets(50, seed=1234):
        text = rng.choice(headline_texts)
        result = engine.classify(text, labels)
        assert_valid_classification(result, labels)
        assert result.pieces == 1 and not result.split


def test_classify_single_label_scores_it_one(engine):
    result = engine.classify("温格的球队终于又踢了一场经典的比赛。", ["体育"])
    assert result.label == "体育"
    assert result.scores == {"体育": pytest.approx(1.0, abs=1e-12)}


def test_classify_tells_a_label_from_the_label_it_prefixes(engine, headline_texts):
    """财经 and 财经新闻 are scored as different answers (end-of-sequence decides), never merged."""
    for text in headline_texts[:10]:
        result = engine.classify(text, ["财经", "财经新闻"])
        assert_valid_classification(result, ["财经", "财经新闻"])
        assert result.scores["财经"] != pytest.approx(result.scores["财经新闻"], abs=1e-9)


def test_classify_accepts_labels_as_one_string(engine):
    text = "小米集团今天发布了新款手机，售价3999元。"
    assert engine.classify(text, "财经，体育, 科技、娱乐") == engine.classify(text, ["财经", "体育", "科技", "娱乐"])


# ---- determinism -----------------------------------------------------------------------------


def test_same_classification_twice_gives_identical_output(engine):
    text = "以色列空袭之后，又一国大军进入叙利亚，俄战机起飞应敌。"
    labels = ["军事", "财经", "体育", "国际"]
    assert engine.classify(text, labels) == engine.classify(text, labels)


def test_same_extraction_twice_gives_identical_output(engine):
    text = "甲方：北京星河科技有限公司，乙方：上海云帆信息技术有限公司，合同金额人民币一百万元整。"
    first = engine.extract(text, ["公司名称", "金额", "甲方"])
    assert first == engine.extract(text, ["公司名称", "金额", "甲方"])
    assert first.raw, "the raw model output is kept"


def test_same_generation_twice_gives_identical_output(engine):
    prompt = "输入: 从深圳福田口岸或者黄冈口岸过香港，一日游怎么玩呢？\n分类: 旅游，财经\n输出:"
    first = engine.generate(prompt, 24)
    assert first == engine.generate(prompt, 24)
    assert isinstance(first, Generation) and 0 < first.new_tokens <= 24


# ---- extraction ------------------------------------------------------------------------------


def test_extract_returns_every_field_and_only_mentions_found_in_text(engine_by_weights, entity_texts):
    engine = engine_by_weights
    fields = ["人名", "地址", "组织机构", "公司名称"]
    for text in entity_texts[:6]:
        result = engine.extract(text, fields)
        assert list(result.fields) == fields
        assert_mentions_index_text(result, text)
        for name, dropped in result.dropped.items():
            assert name in fields and all(mention not in text for mention in dropped)


def test_extract_raw_output_has_one_line_per_field(engine):
    result = engine.extract("温格的球队终于又踢了一场经典的比赛，2比1战胜曼联。", ["人名", "组织机构", "比分"])
    assert len(result.raw.split("\n")) == 3


# ---- long texts ------------------------------------------------------------------------------


def test_classify_long_text_is_split_and_reported_as_split(engine, long_chinese_text):
    labels = ["财经", "体育", "科技", "娱乐", "财经新闻"]
    result = engine.classify(long_chinese_text, labels)
    assert result.split and result.pieces > 1
    assert_valid_classification(result, labels)


def test_extract_long_text_is_split_and_offsets_index_the_original(engine_by_weights, long_chinese_text):
    engine = engine_by_weights
    result = engine.extract(long_chinese_text, ["人名", "地址"])
    assert result.split and result.pieces > 1
    assert result.raw.count("[piece ") == result.pieces
    assert_mentions_index_text(result, long_chinese_text)


def test_pieces_decoded_in_bounded_groups_give_the_same_results_as_all_at_once(
    engine, long_chinese_text, monkeypatch
):
    fields = ["人名", "地址"]
    prompts = [engine.model.tokens.encode(long_chinese_text[:n]) for n in (120, 40, 300)]
    eos = engine.model.tokens.eos_id
    together = engine.extract(long_chinese_text, fields)
    generated = decoding.greedy_generate(engine.model.runner, prompts, [6, 3, 5], eos)
    # A budget below any one piece's cache: every piece, every prompt, is a group of its own.
    monkeypatch.setattr(cache_groups, "GROUP_CACHE_TOKENS", 1)
    apart = engine.extract(long_chinese_text, fields)
    assert together.pieces > 1
    assert apart.raw == together.raw
    assert apart.fields == together.fields
    assert decoding.greedy_generate(engine.model.runner, prompts, [6, 3, 5], eos) == generated


@pytest.fixture
def copying_decoder(engine, entity_rows, monkeypatch):
    """Replace the model's answers with ones that copy known entity names out of each piece's prompt,
    plus one name that is not in the text, so the engine's long-text plumbing is checked on real mentions."""
    tokenizer = engine.model.tokens.tokenizer
    kinds = {"人名": "name", "地址": "address", "组织机构": "organization"}
    names = {
        field: sorted({n for row in entity_rows for n in row["label"].get(kind, {})}) for field, kind in kinds.items()
    }
    hallucination = "不存在于文本的名字"

    def decode_fields(runner, requests, stop_ids, max_new_tokens, exact_new_tokens=None):
        grouped = []
        for request in requests:
            answers = []
            for suffix in request.suffixes:
                prompt = tokenizer.decode(request.prefix + suffix)
                chunk = prompt[len("输入: ") : prompt.rindex("\n抽取: ")]
                field = prompt[prompt.rindex("\n抽取: ") + len("\n抽取: ") : prompt.rindex("\n输出:")]
                found = [n for n in names[field] if n in chunk] + [hallucination]
                ids = tokenizer.encode(f"{field}: " + "\t".join(found), special_tokens=False)
                answers.append(FieldAnswer(list(ids), [0.9] * len(ids)))
            grouped.append(answers)
        return grouped

    monkeypatch.setattr(fast_backend, "decode_fields", decode_fields)
    return names, hallucination


def test_extract_long_text_mentions_from_every_piece_map_to_every_occurrence_once(
    engine, long_chinese_text, copying_decoder
):
    names, hallucination = copying_decoder
    fields = ["人名", "地址", "组织机构"]
    texts = [long_chinese_text, long_chinese_text[1234:], "前言。\n" + long_chinese_text[:3000]]
    with ThreadPoolExecutor(len(texts)) as pool:
        results = list(pool.map(lambda t: engine.extract(t, fields), texts))
    for text, result in zip(texts, results, strict=True):
        assert result.split and result.pieces > 1
        for field in fields:
            expected = set().union(*(occurrences(text, n) for n in names[field]))
            got = [(m.start, m.end) for m in result.fields[field]]
            assert expected, f"the text holds some {field}"
            assert set(got) == expected
            assert len(got) == len(set(got)), "overlapping pieces must not duplicate a mention"
            assert result.dropped[field] == [hallucination]
        assert_mentions_index_text(result, text)


# ---- batching --------------------------------------------------------------------------------


@pytest.fixture
def batch_sizes(monkeypatch):
    """Record how many requests each model call served, to prove the batched path ran."""
    sizes: dict[str, list[int]] = {"classify": [], "extract": [], "generate": []}
    # The backend runs each task's model step, so its module is where the decoders are looked up.
    for name, kind in (("score_labels", "classify"), ("decode_fields", "extract"), ("greedy_generate", "generate")):
        original = getattr(fast_backend, name)

        def recording(runner, requests, *args, _original=original, _kind=kind, **kwargs):
            sizes[_kind].append(len(requests))
            return _original(runner, requests, *args, **kwargs)

        monkeypatch.setattr(fast_backend, name, recording)
    return sizes


def mixed_requests(texts: list[str]) -> list[tuple[str, tuple]]:
    labels = [["财经", "体育"], ["科技", "科技公司", "娱乐"], ["正面", "负面", "中性"], ["sports", "finance"]]
    fields = [["人名", "地址"], ["组织机构"], ["公司名称", "人名", "时间"]]
    requests: list[tuple[str, tuple]] = []
    for i, text in enumerate(texts[:8]):
        requests.append(("classify", (text, labels[i % len(labels)])))
    for i, text in enumerate(texts[8:14]):
        requests.append(("extract", (text, fields[i % len(fields)])))
    for i, text in enumerate(texts[14:18]):
        requests.append(("generate", (f"输入: {text}\n分类: 财经，体育\n输出:", 8 + 4 * i)))
    return requests


def run_request(engine: Engine, kind: str, args: tuple):
    return getattr(engine, kind)(*args)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16", "int8"])
def test_concurrent_requests_give_the_same_results_as_one_at_a_time(
    engines_by_dtype, entity_texts, batch_sizes, dtype
):
    engine = engines_by_dtype[dtype]
    texts = entity_texts[40:58]
    requests = mixed_requests(texts)
    sequential = [run_request(engine, kind, args) for kind, args in requests]
    for sizes in batch_sizes.values():
        sizes.clear()
    with ThreadPoolExecutor(len(requests)) as pool:
        concurrent = list(pool.map(lambda r: run_request(engine, *r), requests))
    assert max(max(sizes) for sizes in batch_sizes.values()) > 1, "some requests must have shared a batch"

    for (kind, _), one, together in zip(requests, sequential, concurrent, strict=True):
        if kind == "classify":
            assert together.label == one.label
            for label, score in one.scores.items():
                assert together.scores[label] == pytest.approx(score, abs=1e-5)
        elif kind == "extract":
            assert together.raw == one.raw
            assert {f: [(m.text, m.start, m.end) for m in ms] for f, ms in together.fields.items()} == {
                f: [(m.text, m.start, m.end) for m in ms] for f, ms in one.fields.items()
            }
        else:
            assert together.text == one.text


@pytest.mark.parametrize(
    "dtype",
    [
        "float32",
        # bf16 once decoded a field of rows 5, 7 and 60 differently next to others: where the prompt
        # shared by the fields ended depended on which fields came along, and a token run with the
        # shared prompt or with the field's own part comes out a last bit apart (see PROBE_FIELDS).
        "bfloat16",
        "float16",
        "int8",
    ],
)
def test_extracting_several_fields_decodes_each_field_as_if_it_were_alone(engines_by_dtype, entity_texts, dtype):
    engine = engines_by_dtype[dtype]
    fields = ["人名", "地址", "组织机构", "公司名称"]
    for text in [entity_texts[i] for i in (5, 7, 60, 61)]:
        together = engine.extract(text, fields)
        lines = together.raw.split("\n")
        assert len(lines) == len(fields)
        for i, field in enumerate(fields):
            alone = engine.extract(text, [field])
            assert lines[i] == alone.raw, f"field {field!r} decoded differently next to other fields"
            assert together.fields[field] == alone.fields[field]


# ---- free prompt -----------------------------------------------------------------------------


def test_the_output_projection_is_held_only_from_the_first_free_prompt(demo_dir):
    """Classification, extraction and health checks score a few rows of the output projection
    straight from the stored weights; only full-vocabulary decoding needs it held whole."""
    eng = Engine(Settings(model_dir=demo_dir, dtype="bfloat16"))
    eng.load()
    try:
        projection = eng.model.runner.output
        eng.classify("温格的球队终于又踢了一场经典的比赛。", ["体育", "财经"])
        eng.extract("小米集团在北京发布了新手机。", ["公司名称", "地名"])
        eng.health_check()
        assert not projection.resident
        eng.generate("输入: 温格的球队\n分类: 体育，财经\n输出:", 3)
        assert projection.resident
    finally:
        eng.close()


def test_a_benchmark_engine_ignores_end_of_sequence_and_writes_every_token_asked(engine, demo_dir):
    prompt = "输入: 温格的球队\n分类: 体育，财经\n输出:"
    free = engine.model.tokens.encode(complete_free_prompt(prompt))
    written = decoding.greedy_generate(engine.model.runner, [free], [24], engine.model.tokens.eos_id)[0]
    assert len(written) == 24
    stop = written[5]  # declared end-of-sequence below: a token the model writes mid-answer
    for ignore, expected in ((0, written.index(stop) + 1), (1, 24)):
        eng = Engine(Settings(model_dir=demo_dir))
        eng.load()
        try:
            assert isinstance(eng.model.backend, FastBackend)
            eng.model.backend.bench = BenchSwitches(ignore_eos=bool(ignore))
            eng.model.tokens.eos_id = stop
            assert eng.generate(prompt, 24).new_tokens == expected
        finally:
            eng.close()


def test_generate_appends_gen_to_a_prompt_that_stops_at_output(engine):
    prompt = "输入: 小米集团今天发布了新款手机\n分类: 财经，科技\n输出:"
    result = engine.generate(prompt, 4)
    assert result.prompt_tokens == len(engine.model.tokens.encode(complete_free_prompt(prompt)))
    assert result.prompt_tokens == len(engine.model.tokens.encode(prompt + " [GEN]"))


def test_generate_never_writes_more_than_asked(engine_by_weights):
    engine = engine_by_weights
    for limit in (1, 3, 17):
        result = engine.generate("输入: 你好\n分类: 正面，负面\n输出:", limit)
        assert 1 <= result.new_tokens <= limit
        assert not result.truncated


def test_generate_near_the_window_is_cut_short_and_says_so(engine):
    tokens = engine.model.tokens
    prompt = "客户反馈：订单号20231105的快递三天没有更新物流信息。"
    while tokens.count_tokens(prompt + "希望尽快处理。") < engine.settings.window_tokens - 5:
        prompt += "希望尽快处理。"
    result = engine.generate(prompt, 64)
    assert result.truncated
    assert result.prompt_tokens + result.new_tokens <= engine.settings.window_tokens


# ---- official decoding -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def official_engine(demo_dir):
    eng = Engine(Settings(model_dir=demo_dir, decoding="official", max_new_tokens=32))
    eng.load()
    yield eng
    eng.close()


def test_official_decoding_classify_answers_a_given_label(official_engine, headline_texts):
    for labels in random_label_sets(6, seed=5):
        result = official_engine.classify(headline_texts[0], labels)
        assert result.label in labels
        assert math.isclose(sum(result.scores.values()), 1.0, abs_tol=1e-6)


def test_official_decoding_extract_returns_every_field_with_valid_offsets(official_engine, entity_texts):
    fields = ["人名", "地址", "组织机构", "公司", "游戏", "书名", "电影"]  # more than one chunk of 6
    text = entity_texts[0]
    result = official_engine.extract(text, fields)
    assert isinstance(result, Extraction)
    assert list(result.fields) == fields
    assert result.raw
    assert_mentions_index_text(result, text)
