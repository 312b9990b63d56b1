"""Evaluation metrics against small cases worked out by hand, and against scikit-learn on random ones."""

from __future__ import annotations

import random

import pytest
from sklearn.metrics import f1_score, precision_recall_fscore_support
from sklearn.preprocessing import MultiLabelBinarizer

from evaluation import GoldRow, GoldSet, Span, build_report
from evaluation.metrics import NO_ANSWER, classification_metrics, extraction_confusion, span_metrics, speed


def test_classification_scores_match_a_hand_computed_case_with_a_label_never_predicted():
    gold = ["A", "A", "B", "C"]
    got = ["A", "B", "B", "A"]
    m = classification_metrics(gold, got, ["A", "B", "C", "D"])
    assert m["accuracy"] == 0.5
    assert m["per_label"]["A"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert m["per_label"]["B"] == {"precision": 0.5, "recall": 1.0, "f1": 0.6667, "support": 1}
    # C is never predicted: no precision to speak of, counted as 0; its one row is missed.
    assert m["per_label"]["C"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    # D is offered but neither in the gold nor predicted: listed, and left out of the macro average.
    assert m["per_label"]["D"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["macro_f1"] == round((0.5 + 2 / 3 + 0.0) / 3, 4)
    assert m["confusion"]["gold"] == ["A", "B", "C", "D"]
    assert m["confusion"]["matrix"] == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]


def test_a_failed_prediction_counts_as_wrong_and_gets_its_own_confusion_column():
    m = classification_metrics(["A", "B"], ["A", None], ["A", "B"])
    assert m["accuracy"] == 0.5
    assert m["per_label"]["B"]["recall"] == 0.0
    assert NO_ANSWER not in m["per_label"]
    assert m["macro_f1"] == 0.5  # A scores 1, B scores 0; "no answer" is not a label
    assert m["confusion"]["predicted"] == ["A", "B", NO_ANSWER]
    assert m["confusion"]["matrix"] == [[1, 0, 0], [0, 0, 1]]


def test_classification_agrees_with_scikit_learn_on_random_labels():
    rng = random.Random(7)
    names = [f"L{i}" for i in range(6)]
    for _ in range(20):
        gold = [rng.choice(names[:5]) for _ in range(40)]
        got = [rng.choice(names) for _ in range(40)]
        m = classification_metrics(gold, got, names)
        assert m["macro_f1"] == pytest.approx(f1_score(gold, got, average="macro", zero_division=0), abs=1e-4)
        p, r, f, s = precision_recall_fscore_support(gold, got, labels=names, zero_division=0)
        for i, name in enumerate(names):
            assert m["per_label"][name]["precision"] == pytest.approx(p[i], abs=1e-4)
            assert m["per_label"][name]["recall"] == pytest.approx(r[i], abs=1e-4)
            assert m["per_label"][name]["f1"] == pytest.approx(f[i], abs=1e-4)
            assert m["per_label"][name]["support"] == s[i]


# Row 1 has overlapping gold spans (北京 inside 北京大学) and a prediction listed twice;
# row 2 has no gold at all; row 3 has no prediction at all. 时间 is never present anywhere.
GOLD = [
    {("组织", 0, 4), ("地点", 0, 2), ("地点", 5, 7)},
    set(),
    {("人名", 0, 2)},
]
PREDICTED = [
    {("组织", 0, 4), ("地点", 5, 7), ("地点", 0, 3)},
    {("人名", 0, 2)},
    set(),
]
FIELDS = ["组织", "地点", "人名", "时间"]


def test_strict_span_scores_match_a_hand_computed_case():
    m = span_metrics(GOLD, PREDICTED, FIELDS)
    assert m["micro"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 4, "tp": 2, "fp": 2, "fn": 2}
    assert m["per_field"]["组织"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1, "tp": 1, "fp": 0,
                                      "fn": 0}
    assert m["per_field"]["地点"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2, "tp": 1, "fp": 1,
                                      "fn": 1}
    assert m["per_field"]["人名"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1, "tp": 0, "fp": 1,
                                      "fn": 1}
    assert m["per_field"]["时间"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "tp": 0, "fp": 0,
                                      "fn": 0}


def test_empty_gold_and_empty_predictions_score_zero_not_an_error():
    assert span_metrics([set()], [set()], ["人名"])["micro"] == {
        "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "tp": 0, "fp": 0, "fn": 0}
    only_gold = span_metrics([{("人名", 0, 2)}], [set()], ["人名"])["micro"]
    assert (only_gold["precision"], only_gold["recall"], only_gold["fn"]) == (0.0, 0.0, 1)
    only_predicted = span_metrics([set()], [{("人名", 0, 2)}], ["人名"])["micro"]
    assert (only_predicted["precision"], only_predicted["recall"], only_predicted["fp"]) == (0.0, 0.0, 1)


def test_span_scores_agree_with_scikit_learn_multilabel_micro_averages():
    rng = random.Random(3)
    for _ in range(20):
        gold = [{(rng.choice("ABC"), s, s + rng.randint(1, 3)) for s in rng.sample(range(10), rng.randint(0, 4))}
                for _ in range(15)]
        got = [{(rng.choice("ABC"), s, s + rng.randint(1, 3)) for s in rng.sample(range(10), rng.randint(0, 4))}
               for _ in range(15)]
        m = span_metrics(gold, got, ["A", "B", "C"])
        binarizer = MultiLabelBinarizer().fit(gold + got)
        p, r, f, _ = precision_recall_fscore_support(binarizer.transform(gold), binarizer.transform(got),
                                                     average="micro", zero_division=0)
        assert (m["micro"]["precision"], m["micro"]["recall"], m["micro"]["f1"]) == pytest.approx((p, r, f), abs=1e-4)
        for name in "ABC":
            gold_f = [{s for s in row if s[0] == name} for row in gold]
            got_f = [{s for s in row if s[0] == name} for row in got]
            binarizer = MultiLabelBinarizer().fit(gold_f + got_f)
            if not binarizer.classes_.size:
                continue
            p, r, f, _ = precision_recall_fscore_support(binarizer.transform(gold_f), binarizer.transform(got_f),
                                                         average="micro", zero_division=0)
            field = m["per_field"][name]
            assert (field["precision"], field["recall"], field["f1"]) == pytest.approx((p, r, f), abs=1e-4)


def test_extraction_report_scores_text_match_on_field_and_mention_text():
    text = "北京大学在北京"
    gold = GoldSet("extract", [
        GoldRow(1, text, spans=(Span("组织", 0, 4, "北京大学"), Span("地点", 0, 2, "北京"),
                                Span("地点", 5, 7, "北京"))),
        GoldRow(2, "没有实体", spans=()),
        GoldRow(3, "张三来了", spans=(Span("人名", 0, 2, "张三"),)),
    ], FIELDS)
    mention = lambda t, a, b: {"text": t, "start": a, "end": b, "score": 0.9}  # noqa: E731
    records = [
        {"line": 1, "fields": {"组织": [mention("北京大学", 0, 4)],
                               "地点": [mention("北京", 5, 7), mention("北京", 5, 7), mention("北京大", 0, 3)]}},
        {"line": 2, "fields": {"人名": [mention("没有", 0, 2)]}},
        {"line": 3, "fields": {"人名": []}},
    ]
    report = build_report(gold, records)
    assert report["micro"]["f1"] == 0.5
    # Text match: the two gold 北京 are one (地点, 北京) item, found; 北京大 and 没有 are wrong; 张三 is missed.
    loose = report["text_match"]["micro"]
    assert (loose["tp"], loose["fp"], loose["fn"]) == (2, 2, 1)
    assert loose["f1"] == round(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3), 4)
    assert [e["line"] for e in report["worst_errors"]] == [1, 2, 3]


def test_field_confusion_pairs_spans_by_offsets():
    gold = [{("人名", 0, 2), ("地点", 3, 5), ("组织", 6, 8)}]
    got = [{("地点", 0, 2), ("地点", 3, 5), ("人名", 9, 10)}]
    confusion = extraction_confusion(gold, got, ["人名", "地点", "组织"])
    axis = confusion["gold"]
    assert axis == ["人名", "地点", "组织", NO_ANSWER]
    cell = {(axis[i], axis[j]): n for i, row in enumerate(confusion["matrix"]) for j, n in enumerate(row) if n}
    assert cell == {("人名", "地点"): 1, ("地点", "地点"): 1, ("组织", NO_ANSWER): 1, (NO_ANSWER, "人名"): 1}


def test_speed_takes_percentiles_of_latency_and_rows_per_second_of_wall_time():
    figures = speed([10.0, 20.0, 30.0, 40.0, 1000.0], [500.0, 500.0, 500.0, 500.0, 500.0])
    assert figures["latency_ms"] == {"p50": 30.0, "p95": 808.0}
    assert figures["rows_per_s"] == 2.0
