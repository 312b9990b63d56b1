"""The soak's memory figures: growth is read between samples taken under load, never after the clients stop."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_soak():
    sys.path.insert(0, str(ROOT / "scripts"))  # as when it runs as a script: its sibling app_memory
    spec = importlib.util.spec_from_file_location("soak", ROOT / "scripts" / "soak.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_growth_runs_from_the_first_sample_after_warm_up_to_the_last_one_under_load():
    soak = load_soak()
    args = argparse.Namespace(url="http://127.0.0.1:1", clients=8, minutes=10.0, warmup=2.0, window=1.0)
    # Loading, warm-up, a climb under load, then the clients stop at 600 s and the app gives memory back.
    samples = [(0.0, 900.0), (60.0, 1800.0), (120.0, 2000.0), (150.0, 1700.0), (170.0, 1900.0), (300.0, 2030.0),
               (550.0, 1950.0), (570.0, 1650.0), (595.0, 2050.0), (605.0, 2040.0), (700.0, 1500.0)]
    outcomes = [soak.Outcome("classify", 1.0), soak.Outcome("bad", 0.1, deliberate=True)]
    summary = soak.summarise(outcomes, samples, 600.0, args)
    assert summary["rss_mb_after_warmup"] == 2000.0
    assert summary["rss_mb_end"] == 2050.0, "the last sample taken while the clients were sending"
    assert summary["rss_end_at_s"] == 595.0
    assert round(summary["rss_growth_percent"], 6) == 2.5
    assert summary["rss_mb_drained"] == 1500.0
    # The minute after warm-up (2000, 1700, 1900) and the last minute under load (1950, 1650, 2050).
    assert summary["rss_mb_median_first_window"] == 1900.0
    assert summary["rss_mb_median_last_window"] == 1950.0
    assert round(summary["rss_growth_percent_medians"], 6) == round(100 * 50 / 1900, 6)
    assert summary["rss_mb_peak"] == 2050.0
    assert summary["errors"] == 0 and summary["deliberate_bad_requests"] == 1


def test_the_pid_is_looked_for_in_the_workspace_start_sh_recorded(tmp_path, monkeypatch):
    load_soak()
    import app_memory  # the soak's sibling, on the path load_soak set

    instance = tmp_path / ".seqgpt-instance"
    monkeypatch.setattr(app_memory, "INSTANCE_FILE", instance)
    assert app_memory.recorded_workspace() is None, "nothing recorded: start.sh's default applies"
    instance.write_text("SEQGPT_WORKSPACE=/srv/old\nSEQGPT_WORKSPACE=/srv/seqgpt\n", encoding="utf-8")
    assert app_memory.recorded_workspace() == "/srv/seqgpt"
    with pytest.raises(SystemExit, match="/srv/seqgpt"):  # nothing runs there: the error names where it looked
        app_memory.app_pid(None)


def test_refusals_with_retry_after_are_shed_not_errors_and_short_requests_are_reported_apart():
    soak = load_soak()
    args = argparse.Namespace(url="http://127.0.0.1:1", clients=8, minutes=10.0, warmup=2.0, window=1.0)
    outcomes = [
        soak.Outcome("classify", 2.0, chars=40),
        soak.Outcome("classify", 4.0, chars=120),
        soak.Outcome("extract", 90.0, chars=3000),
        soak.Outcome("extract", 0.01, chars=3000, shed=True),
        soak.Outcome("extract", 120.0, "gave up after 120 s", chars=800, gave_up=True),
        soak.Outcome("generate", 1.0, "HTTP 500", chars=300),
    ]
    summary = soak.summarise(outcomes, [(0.0, 900.0), (300.0, 900.0)], 600.0, args)
    assert summary["shed"] == 1
    assert summary["gave_up"] == 1
    assert summary["errors"] == 1 and summary["errors_by_kind"] == {"HTTP 500": 1}
    assert summary["short_requests"] == 2 and summary["short_p95_s"] == 4.0
    assert summary["long_p95_s"] == 90.0, "a refusal's few milliseconds are no answer's latency"
    assert summary["longest_wait_s"] == 120.0
    soak.print_summary(summary)


def test_the_mix_draws_texts_of_the_five_lengths():
    soak = load_soak()
    import random

    rng = random.Random(0)
    assert {soak.text_length(rng) for _ in range(200)} == {40, 120, 300, 800, 3000}
