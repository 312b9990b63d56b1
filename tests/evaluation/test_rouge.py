"""Character ROUGE: hand-computed small cases, and agreement with the rouge-score library on Chinese texts."""

from __future__ import annotations

import json
import random

import pytest

from evaluation import build_report
from evaluation.data import parse_gold
from evaluation.rouge import lcs_length, mean_scores, rouge_scores


def test_identical_strings_score_one_everywhere() -> None:
    scores = rouge_scores("小米发布新手机", "小米发布新手机")
    assert all(scores[k] == {"precision": 1.0, "recall": 1.0, "f1": 1.0} for k in scores)


def test_disjoint_strings_score_zero() -> None:
    scores = rouge_scores("甲乙丙", "丁戊己")
    assert all(v == 0.0 for k in scores for v in scores[k].values())


def test_an_empty_side_scores_zero_not_an_error() -> None:
    for prediction, reference in (("", "参考摘要"), ("预测", ""), ("", ""), ("  \n", "参考")):
        scores = rouge_scores(prediction, reference)
        assert all(v == 0.0 for k in scores for v in scores[k].values())


def test_repeated_characters_are_clipped_to_the_count_on_the_other_side() -> None:
    scores = rouge_scores("啊啊啊啊", "啊啊")
    # Unigrams: 2 of 4 predicted match (clipped), recall 2 of 2.
    assert scores["rouge1"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3)}
    # Bigrams: prediction has 3 "啊啊", reference 1: overlap 1.
    assert scores["rouge2"]["precision"] == pytest.approx(1 / 3) and scores["rouge2"]["recall"] == 1.0
    assert scores["rougeL"]["precision"] == 0.5 and scores["rougeL"]["recall"] == 1.0


def test_a_hand_computed_case_with_whitespace_removed() -> None:
    # Tokens: 今 天 天 气 好 (5) vs 今 天 气 很 好 (5). Unigram overlap 4; bigrams 今天, 天气 shared (2 of 4);
    # LCS 今天气好 = 4.
    scores = rouge_scores("今天 天气好", "今天气很好")
    assert scores["rouge1"]["f1"] == pytest.approx(0.8)
    assert scores["rouge2"]["f1"] == pytest.approx(0.5)
    assert scores["rougeL"]["f1"] == pytest.approx(0.8)
    assert lcs_length("ABCBDAB", "BDCABA") == 4


def test_the_report_holds_the_mean_over_rows() -> None:
    rows = [{"content": "原文一", "summary": "小米发布"}, {"content": "原文二", "summary": "甲乙"}]
    data = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode()
    gold = parse_gold(data, "lcsts.jsonl", "summarize", {})
    records = [{"line": 1, "text": "原文一", "summary": "小米发布"}, {"line": 2, "text": "原文二", "summary": "丙丁"}]
    report = build_report(gold, records)
    assert report["rouge1"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert report["rougeL"]["f1"] == 0.5 and report["worst_errors"][0]["line"] == 2


class _Characters:
    """rouge-score's tokenizer interface, fed the same tokens as the definition: characters, no whitespace."""

    def tokenize(self, text: str) -> list[str]:
        return [ch for ch in text if not ch.isspace()]


def test_scores_match_the_rouge_score_library_with_a_character_tokenizer() -> None:
    from rouge_score.rouge_scorer import RougeScorer

    scorer = RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=_Characters())
    alphabet = "小米发布新手机价格元的了是在和 一二三啊"
    rng = random.Random(7)
    pairs = [("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))),
              "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))) for _ in range(300)]
    ours_rows = []
    for prediction, reference in pairs:
        ours = rouge_scores(prediction, reference)
        theirs = scorer.score(reference, prediction)  # rouge-score takes (target, prediction)
        ours_rows.append(ours)
        for key in ("rouge1", "rouge2", "rougeL"):
            assert ours[key]["precision"] == pytest.approx(theirs[key].precision)
            assert ours[key]["recall"] == pytest.approx(theirs[key].recall)
            assert ours[key]["f1"] == pytest.approx(theirs[key].fmeasure)
    assert mean_scores(ours_rows)["rouge1"]["f1"] > 0
