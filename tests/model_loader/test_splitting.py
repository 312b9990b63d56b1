"""Splitting long texts into sentence-aligned, overlapping pieces that fit a token budget."""

from __future__ import annotations

import random

import pytest

from model_loader.text.splitting import Piece, sentence_spans, split_text

NEWS = (
    "彭小军认为，国内银行现在走的是台湾的发卡模式，先通过跑马圈地再在圈的地里面选择客户。"
    "温格的球队终于又踢了一场经典的比赛，2比1战胜曼联之后枪手仍然留在了夺冠集团之内！"
    "从深圳福田口岸或者黄冈口岸过香港，一日游怎么玩呢？"
    "以色列空袭之后，又一国大军进入叙利亚，俄战机起飞应敌。"
    "他说：“我们会尽快处理。”客户反馈：订单号20231105的快递三天没有更新物流信息；希望尽快处理…"
    "Apple released a new phone in California. The quick brown fox jumps over the lazy dog.\n"
    "第二段从这里开始，\n\n第三段在两个换行之后。"
)


def utf8_bytes(text: str) -> int:
    """A count that is not one per character, like a real tokenizer's."""
    return len(text.encode("utf-8"))


def long_text(sentences: int = 60, seed: int = 7) -> str:
    rng = random.Random(seed)
    pool = [s + "。" for s in NEWS.replace("！", "。").replace("？", "。").split("。") if s.strip()]
    return "".join(rng.choice(pool) for _ in range(sentences))


def assert_covers(text: str, pieces: list[Piece]) -> None:
    assert pieces[0].start == 0
    assert pieces[-1].end == len(text)
    for before, after in zip(pieces, pieces[1:], strict=False):
        assert after.start <= before.end, f"gap between {before} and {after}"


# ---- sentence_spans --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        NEWS,
        "没有任何标点的一句话",
        "。。。开头就是句号",
        "结尾有引号。”",
        "\n\n开头换行\n",
        "a.b. c... d! e? f",
        "单字",
    ],
)
def test_sentence_spans_cover_the_text_exactly(text):
    spans = sentence_spans(text)
    assert "".join(text[s.start : s.end] for s in spans) == text
    assert spans[0].start == 0 and spans[-1].end == len(text)
    assert all(a.end == b.start for a, b in zip(spans, spans[1:], strict=False))
    assert all(s.end > s.start for s in spans)


def test_sentence_spans_of_empty_text_is_empty():
    assert sentence_spans("") == []


def test_sentence_spans_end_after_sentence_marks_and_closing_quotes():
    text = "他说：“我们会尽快处理。”然后离开了！真的吗？是的\n下一行"
    assert [text[s.start : s.end] for s in sentence_spans(text)] == [
        "他说：“我们会尽快处理。”",
        "然后离开了！",
        "真的吗？",
        "是的\n",
        "下一行",
    ]


def test_sentence_spans_split_english_after_a_period_and_space():
    text = "Apple released a phone. The fox jumps."
    assert [text[s.start : s.end] for s in sentence_spans(text)] == ["Apple released a phone. ", "The fox jumps."]


# ---- split_text ------------------------------------------------------------------------------


def test_split_text_that_fits_is_one_piece():
    assert split_text(NEWS, len(NEWS), len, 50) == [Piece(0, len(NEWS))]


@pytest.mark.parametrize("count", [len, utf8_bytes], ids=["chars", "utf8-bytes"])
@pytest.mark.parametrize("budget", [60, 150, 400])
def test_split_text_pieces_cover_the_text_and_fit_the_budget(count, budget):
    text = long_text()
    pieces = split_text(text, budget, count, overlap_chars=40)
    assert len(pieces) > 1
    assert_covers(text, pieces)
    for piece in pieces:
        assert count(text[piece.start : piece.end]) <= budget


@pytest.mark.parametrize("overlap", [0, 20, 60, 200])
def test_split_text_overlap_never_exceeds_the_limit(overlap):
    text = long_text()
    pieces = split_text(text, 150, len, overlap)
    for before, after in zip(pieces, pieces[1:], strict=False):
        assert 0 <= before.end - after.start <= overlap


def test_split_text_repeats_whole_sentences_when_overlap_allows():
    text = long_text()
    pieces = split_text(text, 150, len, overlap_chars=60)
    overlaps = [before.end - after.start for before, after in zip(pieces, pieces[1:], strict=False)]
    assert any(size > 0 for size in overlaps), "short sentences fit the overlap, so some must be repeated"


def test_split_text_without_overlap_gives_adjacent_pieces():
    text = long_text()
    pieces = split_text(text, 150, len, overlap_chars=0)
    assert all(a.end == b.start for a, b in zip(pieces, pieces[1:], strict=False))


@pytest.mark.parametrize("count", [len, utf8_bytes], ids=["chars", "utf8-bytes"])
def test_split_text_cuts_only_at_sentence_ends_when_sentences_fit(count):
    text = long_text()
    boundaries = {0} | {s.end for s in sentence_spans(text)}
    for piece in split_text(text, 200, count, overlap_chars=50):
        assert piece.start in boundaries and piece.end in boundaries


def test_split_text_pieces_are_as_full_as_whole_sentences_allow():
    text = long_text()
    spans = sentence_spans(text)
    pieces = split_text(text, 150, len, overlap_chars=0)
    for piece in pieces[:-1]:
        following = next(s for s in spans if s.start == piece.end)
        assert following.end - piece.start > 150, "the next sentence would have fitted in this piece"


@pytest.mark.parametrize(
    ("text", "budget", "count"),
    [
        (long_text(), 60, len),
        (long_text(), 60, utf8_bytes),
        (long_text(), 150, utf8_bytes),
        ("这是一个短句。" * 10 + "超长的句子没有句号" * 40 + "。" + "这是一个短句。" * 10, 80, len),
    ],
    ids=["chars-60", "bytes-60", "bytes-150", "over-long-sentence"],
)
def test_split_text_every_piece_reaches_past_the_previous_one(text, budget, count):
    """A piece that ends where the previous one ended repeats work and adds nothing new."""
    pieces = split_text(text, budget, count, overlap_chars=40)
    for before, after in zip(pieces, pieces[1:], strict=False):
        assert after.start > before.start and after.end > before.end, f"{after} adds nothing after {before}"


def test_split_text_hard_cuts_a_sentence_longer_than_the_budget():
    text = "没有标点" * 125  # 500 characters, one sentence
    pieces = split_text(text, 64, len, overlap_chars=30)
    assert_covers(text, pieces)
    assert all(a.end == b.start for a, b in zip(pieces, pieces[1:], strict=False)), "cut pieces do not overlap"
    assert [p.end - p.start for p in pieces[:-1]] == [64] * (len(pieces) - 1)
    assert 0 < pieces[-1].end - pieces[-1].start <= 64


def test_split_text_hard_cut_respects_a_non_linear_count():
    text = "混合text文本" * 80
    pieces = split_text(text, 50, utf8_bytes, overlap_chars=10)
    assert_covers(text, pieces)
    assert all(utf8_bytes(text[p.start : p.end]) <= 50 for p in pieces)


def test_split_text_keeps_sentence_alignment_around_one_over_long_sentence():
    short = "这是一个短句。" * 10
    text = short + "超长的句子没有句号" * 40 + "。" + short
    pieces = split_text(text, 80, len, overlap_chars=20)
    assert_covers(text, pieces)
    assert all(len(text[p.start : p.end]) <= 80 for p in pieces)
    assert any(p.end == len(short) for p in pieces), "the short sentences before it end at their own boundary"
