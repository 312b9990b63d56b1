"""A workspace that cannot take the history (full, read-only, unopenable) never fails or slows a request.

The tests run as root, for whom file permissions stop nothing, so the write failures come from SQLite
itself: ``max_page_count`` at the file's size gives "database or disk is full", ``query_only`` gives
"attempt to write a readonly database" — the errors a full disk and a read-only mount raise.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from model_loader import Engine
from model_loader.errors import InvalidInputError
from webui.history.errors import HistoryOffError
from webui.history.room import HistoryRoom
from webui.history.store import HistoryStore, Record
from webui.jobs.errors import StorageError
from webui.service.gate import ModelGate
from webui.service.metrics import Metrics
from webui.service.request import RequestInfo, Service
from webui.service.shutdown import ShutdownClock
from webui.service.status import GpuMonitor
from webui.settings import ServerSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
LONG = "合同金额为一百二十万元。" * 100


class FullStore(HistoryStore):
    def _conn(self) -> sqlite3.Connection:
        conn = super()._conn()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count={pages}")
        return conn


class ReadOnlyStore(HistoryStore):
    def _conn(self) -> sqlite3.Connection:
        conn = super()._conn()
        conn.execute("PRAGMA query_only=1")
        return conn


def service_with(engine: Engine, room: HistoryRoom) -> Service:
    gpu = GpuMonitor("cpu")
    metrics = Metrics(queue_depth=lambda: 0.0, load_seconds=lambda: 0.0, gpu=gpu.read)
    service = Service(engine, ModelGate(2, 4), metrics, gpu, ShutdownClock())
    service.history = room
    return service


@pytest.mark.parametrize(("kind", "words"), [(FullStore, "full"), (ReadOnlyStore, "readonly")])
def test_a_full_or_read_only_workspace_answers_every_request_and_warns_once(
        engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: type, words: str):
    settings = ServerSettings(workspace=tmp_path, history=True)
    room = HistoryRoom(engine, settings)
    room.store = kind(tmp_path / "seqgpt560m.db")
    room.recorder.store = room.store
    room.start()
    service = service_with(engine, room)

    async def three() -> list:
        return [await service.run(RequestInfo("classify", "api", LONG), engine.classify, LONG, ["财经", "体育"])
                for _ in range(3)]

    with caplog.at_level(logging.WARNING):
        served = asyncio.run(three())
        room.recorder.flush()
    room.stop()
    assert all(s.result.label in ("财经", "体育") for s in served)
    warnings = [r.getMessage() for r in caplog.records if "history not written" in r.getMessage()]
    assert len(warnings) == 1 and words in warnings[0]
    assert room.recorder.dropped == 3
    assert room.store.counts()["requests"] == 0


def test_a_database_that_cannot_be_opened_turns_history_off_and_requests_still_run(engine: Engine, tmp_path: Path):
    blocked = tmp_path / "not-a-file"
    blocked.mkdir()  # a folder where the database file should be
    room = HistoryRoom(engine, ServerSettings(workspace=tmp_path, history=True, jobs_db=blocked))
    assert not room.on and "cannot open the workspace database" in (room.unavailable or "")
    service = service_with(engine, room if room.on else None)
    served = asyncio.run(service.run(RequestInfo("classify", "api", "球队夺冠"), engine.classify, "球队夺冠",
                                     ["财经", "体育"]))
    assert served.result.label in ("财经", "体育")


def test_the_erase_script_removes_old_requests_and_leaves_no_copy_of_their_text(tmp_path: Path):
    path = tmp_path / "seqgpt560m.db"
    store = HistoryStore(path)
    secret = "机密条款XYZZY-4711"
    store.add([Record("old", 1000.0, "classify", "api", secret, {"text": secret}, {"label": "x"}, 1.0, "m", "w"),
               Record("new", time.time(), "classify", "api", "公开文本", {"text": "公开文本"}, {"label": "y"}, 1.0,
                      "m", "w")])
    done = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "erase_history.py"), "--before", "2020-01-01",
                           "--db", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "erased 1 stored requests" in done.stdout and "1 remain" in done.stdout
    assert store.get("old") is None and store.get("new") is not None
    on_disk = b"".join(p.read_bytes() for p in tmp_path.glob("seqgpt560m.db*"))
    assert secret.encode() not in on_disk
    bad = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "erase_history.py"), "--before", "last week",
                          "--db", str(path)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "2026-01-31" in bad.stderr


def test_recording_costs_the_request_only_a_queue_put(engine: Engine, tmp_path: Path):
    """The request returns before the record is written: the writer thread is held back here."""
    room = HistoryRoom(engine, dataclasses.replace(ServerSettings(workspace=tmp_path), history=True))
    service = service_with(engine, room)  # recorder not started: nothing is written until it is
    served = asyncio.run(service.run(RequestInfo("classify", "api", "球队夺冠"), engine.classify, "球队夺冠",
                                     ["财经", "体育"]))
    assert room.store.get(served.request_id) is None
    room.start()
    room.recorder.flush()
    assert room.store.get(served.request_id).record.answer["label"] == served.result.label
    room.stop()


def _old_and_new(path: Path) -> HistoryStore:
    store = HistoryStore(path)
    store.add([Record("old", 1000.0, "classify", "api", "旧文本", {"text": "旧文本"}, {"label": "x"}, 1.0, "m", "w"),
               Record("new", time.time(), "classify", "api", "新文本", {"text": "新文本"}, {"label": "y"}, 1.0,
                      "m", "w")])
    return store


@pytest.mark.parametrize("before", ["inf", "nan", "1e20", "-1e20"])
def test_an_erase_before_a_number_that_is_no_time_deletes_nothing_and_says_why(engine: Engine, tmp_path: Path,
                                                                                before: str):
    store = _old_and_new(tmp_path / "seqgpt560m.db")
    room = HistoryRoom(engine, ServerSettings(workspace=tmp_path, history=True))
    with pytest.raises(InvalidInputError, match="epoch seconds"):
        room.erase_before(before)
    assert store.counts()["requests"] == 2


class ImpatientStore(HistoryStore):
    """Waits a tenth of a second for other connections instead of the app's 30 seconds."""

    def _conn(self) -> sqlite3.Connection:
        conn = super()._conn()
        conn.execute("PRAGMA busy_timeout=100")
        return conn


def test_an_erase_that_cannot_empty_the_log_because_another_program_reads_says_so(engine: Engine, tmp_path: Path):
    path = tmp_path / "seqgpt560m.db"
    _old_and_new(path)
    room = HistoryRoom(engine, ServerSettings(workspace=tmp_path, history=True))
    room.store = ImpatientStore(path)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM requests").fetchone()  # a read transaction, as an open sqlite3 shell holds
    try:
        with pytest.raises(StorageError, match="close that program and erase again") as refused:
            room.erase_before("2020-01-01")
        assert "1 requests were erased" in str(refused.value)
    finally:
        reader.execute("COMMIT")
        reader.close()
    assert room.erase_before("2020-01-01") == 0, "with the reader gone the log is emptied"
    assert room.store.get("old") is None and room.store.get("new") is not None


def test_history_turned_off_still_ages_out_and_erases_what_it_stored(engine: Engine, tmp_path: Path):
    store = _old_and_new(tmp_path / "seqgpt560m.db")
    room = HistoryRoom(engine, ServerSettings(workspace=tmp_path, history=False, history_retention_days=30))
    assert not room.on
    with pytest.raises(HistoryOffError):
        room.search(None, None, None, None, None)
    room.start()  # the recorder's thread purges by age once it has nothing to write
    try:
        deadline = time.monotonic() + 30
        while store.get("old") is not None:
            assert time.monotonic() < deadline, "the request older than the retention stayed"
            time.sleep(0.5)
    finally:
        room.stop()
    assert store.get("new") is not None
    assert room.erase_before(str(time.time() + 1)) == 1
    assert store.counts()["requests"] == 0


def test_history_off_with_nothing_stored_opens_no_database(engine: Engine, tmp_path: Path):
    room = HistoryRoom(engine, ServerSettings(workspace=tmp_path, history=False))
    assert room.store is None and not (tmp_path / "seqgpt560m.db").exists()
    with pytest.raises(HistoryOffError, match="SEQGPT_HISTORY=on"):
        room.erase_before("2020-01-01")


def test_the_erase_script_finds_the_database_of_the_workspace_start_sh_recorded(tmp_path: Path):
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "scripts" / "erase_history.py", checkout / "scripts")
    for package in ("webui", "model_loader"):
        (checkout / package).symlink_to(REPO_ROOT / package)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (checkout / ".seqgpt-instance").write_text(f"SEQGPT_WORKSPACE={workspace}\n", encoding="utf-8")
    elsewhere = tmp_path / "elsewhere.db"  # the settings file names the database, as SEQGPT_JOBS_DB may
    (workspace / "seqgpt560m.env").write_text(f"SEQGPT_JOBS_DB={elsewhere}\n", encoding="utf-8")
    store = _old_and_new(elsewhere)
    env = {k: v for k, v in os.environ.items() if k not in ("SEQGPT_WORKSPACE", "SEQGPT_JOBS_DB")}
    done = subprocess.run([sys.executable, str(checkout / "scripts" / "erase_history.py"), "--before", "2020-01-01"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert str(elsewhere) in done.stdout and "erased 1 stored requests" in done.stdout
    assert store.get("old") is None and store.get("new") is not None
