"""Durable jobs on the real appliance: Supervisor, demo weights, HTTP; kill -9 mid-job, cancel, purge, a full disk.

One supervisord serves the module. The 20,000-row job is killed twice and must come out whole:
every input row once, in input order, with the user's own columns.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, Appliance, free_port

pytestmark = [pytest.mark.jobs, pytest.mark.service]

LABELS = "投诉，咨询，表扬"
TOPICS = ("快递一直没到，我要投诉", "请问怎么申请发票", "客服态度很好，表扬一下", "=HYPERLINK(\"x\")")
JOB_WITHIN_S = 240


def write_csv(path: Path, rows: int) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "客户"])
        for i in range(rows):
            writer.writerow([f"T{i:06d}", f"第{i}号工单：{TOPICS[i % len(TOPICS)]}", f"客户{i % 97}"])
    return path


def submit(client: httpx.Client, path: Path, **fields: str) -> httpx.Response:
    data = {"task": "classify", "labels": LABELS, **fields}
    with path.open("rb") as handle:
        return client.post("/api/jobs", data=data, files={"file": (path.name, handle)})


def wait_for(client: httpx.Client, job_id: str, done: Callable[[dict], bool], within: float = JOB_WITHIN_S) -> dict:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            reply = client.get(f"/api/jobs/{job_id}")
        except httpx.TransportError:  # the app is being restarted
            time.sleep(0.3)
            continue
        if reply.status_code == 200 and done(job := reply.json()):
            return job
        time.sleep(0.2)
    pytest.fail(f"job {job_id} not there within {within} s: {reply.status_code} {reply.text[:300]}")


def results(client: httpx.Client, job_id: str, fmt: str = "jsonl") -> str:
    reply = client.get(f"/api/jobs/{job_id}/results", params={"format": fmt})
    assert reply.status_code == 200, reply.text
    return reply.text


def test_a_20000_row_job_survives_two_kill_9_with_every_row_once_in_order(appliance: Appliance, tmp_path: Path):
    source = write_csv(tmp_path / "tickets.csv", 20_000)
    with appliance.client() as client:
        accepted = submit(client, source)
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]
        assert accepted.json()["rows_total"] == 20_000 and accepted.json()["state"] == "queued"
        seen = []
        for kill in (1, 2):
            job = wait_for(client, job_id, lambda j, kill=kill: j["rows_done"] >= 4_000 * kill)
            assert job["state"] == "running", job
            if kill == 1:  # what scripts/status.sh prints about jobs
                report = subprocess.run([sys.executable, "-m", "webui.jobs.report", str(appliance.workspace)],
                                        cwd=ROOT, capture_output=True, text=True, check=True).stdout
                assert f"{job_id} running  classify" in report and "/20,000 rows" in report
            pid = appliance.pid()
            os.kill(pid, signal.SIGKILL)
            seen.append(job["rows_done"])
            appliance.wait_healthy()
            assert appliance.pid() != pid, "Supervisor restarted the app"
            after = wait_for(client, job_id, lambda j: j["state"] in ("queued", "running", "done"))
            assert after["rows_done"] >= seen[-1], "committed progress survives kill -9"
        job = wait_for(client, job_id, lambda j: j["state"] == "done")
        assert (job["rows_done"], job["rows_failed"], job["error"]) == (20_000, 0, None)
        lines = [json.loads(line) for line in results(client, job_id).splitlines()]
        table = list(csv.reader(io.StringIO(results(client, job_id, "csv").lstrip("\ufeff"))))
    assert [line["id"] for line in lines] == [f"T{i:06d}" for i in range(20_000)], "each row once, in order"
    assert [line["row"] for line in lines] == list(range(1, 20_001))
    assert all(line["客户"] == f"客户{i % 97}" and line["label"] in ("投诉", "咨询", "表扬")
               for i, line in enumerate(lines))
    assert table[0] == ["id", "text", "客户", "row", "label", "score", "error"] and len(table) == 20_001
    assert table[4][1].startswith("第3号工单") and [row[0] for row in table[1:4]] == ["T000000", "T000001", "T000002"]
    assert not any(row[1].startswith("=") for row in table[1:]), "formula-safe"
    log = appliance.log()
    assert log.count(f"job {job_id} resumed") == 2 and f"job {job_id} finished" in log


def test_bad_files_tasks_and_options_are_refused_with_the_error_shape_and_no_job(appliance: Appliance,
                                                                              tmp_path: Path):
    good = write_csv(tmp_path / "ok.csv", 3)
    broken = tmp_path / "broken.csv"
    broken.write_text('text\n"never closed\n', encoding="utf-8")
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.4")
    empty = tmp_path / "empty.csv"
    empty.write_text("text\n", encoding="utf-8")
    cases = [
        (broken, {}, 422, "CSV"),
        (pdf, {}, 422, "CSV, JSONL or TXT"),
        (empty, {}, 422, "no texts"),
        (good, {"task": "summarize"}, 422, "task=classify"),
        (good, {"labels": ""}, 422, "label"),
        (good, {"task": "extract", "fields": "公司", "threshold": "high"}, 422, "threshold"),
        (good, {"task": "extract", "fields": "公司", "threshold": "2"}, 422, "threshold"),
        (good, {"text_column": "body"}, 422, "'body'"),
    ]
    with appliance.client() as client:
        before = len(client.get("/api/jobs").json()["jobs"])
        for path, fields, status, words in cases:
            reply = submit(client, path, **fields)
            assert reply.status_code == status, (path.name, fields, reply.text)
            body = reply.json()
            assert set(body) == {"error", "request_id"} and words in body["error"] and " · " in body["error"]
        no_file = client.post("/api/jobs", data={"task": "classify", "labels": LABELS})
        assert no_file.status_code == 422 and "`file`" in no_file.json()["error"]
        as_text = client.post("/api/jobs", files={"file": (None, "快递三天没到")},
                              data={"task": "classify", "labels": LABELS})
        assert as_text.status_code == 422 and "`file` came as a text field" in as_text.json()["error"]
        missing = client.get("/api/jobs/nope")
        assert missing.status_code == 404 and set(missing.json()) == {"error", "request_id"}
        assert client.get("/api/jobs/nope/results").status_code == 404
        assert client.delete("/api/jobs/nope").status_code == 404
        wrong = client.put("/api/jobs")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, POST" and "PUT" in wrong.json()["error"]
        assert len(client.get("/api/jobs").json()["jobs"]) == before
    assert not list((appliance.workspace / "jobs").glob(".upload-*")), "refused uploads leave no file"


def test_the_job_list_pages_through_every_job_newest_first(appliance: Appliance, tmp_path: Path):
    source = write_csv(tmp_path / "small.csv", 2)
    with appliance.client() as client:
        ids = []
        for _ in range(2):  # within SEQGPT_JOBS_MAX_QUEUED; the earlier tests' jobs are listed too
            reply = submit(client, source)
            assert reply.status_code == 202, reply.text
            ids.append(reply.json()["job_id"])
        everyone = client.get("/api/jobs", params={"limit": 1000}).json()
        assert everyone["next_before"] is None
        newest = [job["job_id"] for job in everyone["jobs"]]
        assert newest[:2] == ids[::-1] and len(newest) >= 3
        seen, before = [], None
        while True:
            page = client.get("/api/jobs", params={"limit": 1, **({"before": before} if before else {})}).json()
            assert len(page["jobs"]) == 1
            seen += [job["job_id"] for job in page["jobs"]]
            before = page["next_before"]
            if before is None:
                break
        assert seen == newest, "each job once, in order, across the pages"
        for params, words in (({"limit": 0}, "1 to 1000"), ({"limit": "two"}, "1 to 1000"),
                              ({"before": "no-such-job"}, "neither a page mark nor the id of a stored job"),
                              ({"before": "soon_abc"}, "page mark"), ({"before": "inf_abc"}, "page mark")):
            wrong = client.get("/api/jobs", params=params)
            assert wrong.status_code == 422 and words in wrong.json()["error"], wrong.text
        for job_id in ids:
            wait_for(client, job_id, lambda job: job["state"] == "done")
        # The job a page ended on is purged before the next page is asked for: the paging goes on.
        first = client.get("/api/jobs", params={"limit": 1}).json()
        assert [job["job_id"] for job in first["jobs"]] == [ids[1]]
        assert client.delete(f"/api/jobs/{ids[1]}", params={"purge": "true"}).status_code == 200
        after = client.get("/api/jobs", params={"limit": 1, "before": first["next_before"]})
        assert after.status_code == 200, after.text
        assert [job["job_id"] for job in after.json()["jobs"]] == [ids[0]]
        by_id = client.get("/api/jobs", params={"limit": 1, "before": ids[0]}).json()
        assert [job["job_id"] for job in by_id["jobs"]] == [newest[2]], "a bare job id still pages"


def test_cancel_keeps_the_rows_done_and_purge_deletes_the_job_and_its_files(appliance: Appliance, tmp_path: Path):
    source = write_csv(tmp_path / "long.csv", 15_000)
    with appliance.client() as client:
        job_id = submit(client, source).json()["job_id"]
        wait_for(client, job_id, lambda j: j["rows_done"] >= 500)
        cancelled = client.delete(f"/api/jobs/{job_id}")
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
        time.sleep(1.0)
        job = client.get(f"/api/jobs/{job_id}").json()
        assert job["state"] == "cancelled" and 500 <= job["rows_done"] < 15_000 and job["finished_at"]
        lines = results(client, job_id).splitlines()
        assert len(lines) == job["rows_done"] and json.loads(lines[-1])["row"] == job["rows_done"]
        assert (appliance.workspace / "jobs" / job_id / "input.csv").exists()
        purged = client.delete(f"/api/jobs/{job_id}", params={"purge": "true"})
        assert purged.status_code == 200 and purged.json()["purged"] is True
        assert client.get(f"/api/jobs/{job_id}").status_code == 404
        assert not (appliance.workspace / "jobs" / job_id).exists()
    assert f"job {job_id} cancelled" in appliance.log() and f"job {job_id} purged" in appliance.log()


def test_two_jobs_and_interactive_requests_run_together_and_the_queue_is_bounded(appliance: Appliance,
                                                                               tmp_path: Path):
    first, second = write_csv(tmp_path / "a.csv", 3_000), write_csv(tmp_path / "b.csv", 300)
    answers: list[int] = []

    def interactive() -> None:
        with appliance.client() as own:
            for i in range(15):
                answers.append(own.post("/api/classify", json={"text": f"第{i}次咨询发票", "labels": LABELS})
                               .status_code)

    with appliance.client() as client:
        jobs = [submit(client, first).json()["job_id"],
                submit(client, second, task="extract", fields="订单，产品").json()["job_id"]]
        talkers = [threading.Thread(target=interactive) for _ in range(2)]
        for talker in talkers:
            talker.start()
        # The queue holds SEQGPT_JOBS_MAX_QUEUED=3 waiting jobs; more are refused until one starts.
        extra = [submit(client, write_csv(tmp_path / f"x{i}.csv", 2)) for i in range(4)]
        refused = [reply for reply in extra if reply.status_code == 429]
        assert refused and "SEQGPT_JOBS_MAX_QUEUED" in refused[0].json()["error"]
        assert refused[0].headers["retry-after"] == "60"
        for talker in talkers:
            talker.join()
        done = [wait_for(client, job_id, lambda j: j["state"] == "done") for job_id in jobs]
        extraction = json.loads(results(client, jobs[1]).splitlines()[0])
        metrics = client.get("/metrics").text
    assert answers == [200] * 30, "interactive requests are answered while jobs run"
    assert [job["rows_done"] for job in done] == [3_000, 300]
    assert set(extraction["fields"]) == {"订单", "产品"} and extraction["id"] == "T000000"
    assert 'seqgpt_jobs{state="done"}' in metrics and 'seqgpt_job_rows_total{outcome="ok",task="extract"}' in metrics


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Path:
    """A 3 MiB tmpfs: the jobs database fills it half way through a job."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)]
    if os.geteuid() != 0:
        command = ["sudo", "-n", *command]
    made = subprocess.run(command, capture_output=True, text=True)
    if made.returncode != 0:
        pytest.fail(f"the full-disk test mounts a small tmpfs and needs root or sudo: {made.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)] if os.geteuid() == 0 else ["sudo", "-n", "umount", str(mount)])


def test_a_full_disk_fails_the_job_with_a_clear_reason_and_the_app_keeps_serving(
    tiny_disk: Path, tmp_path: Path, demo_model_dir: Path
):
    port = free_port()
    workspace = tmp_path / "ws"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SEQGPT_")},
        "SEQGPT_WORKSPACE": str(workspace), "SEQGPT_JOBS_DB": str(tiny_disk / "jobs.db"),
        "SEQGPT_MODEL_DIR": str(demo_model_dir), "SEQGPT_HOST": "127.0.0.1", "SEQGPT_PORT": str(port),
        "SEQGPT_DEVICE": "cpu", "SEQGPT_TORCH_THREADS": "1",  # as the tier's appliance (conftest.py)
        "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
    }
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "webui"], cwd=ROOT, env=env, stdout=log_file,
                                   stderr=subprocess.STDOUT)
    app = Appliance(workspace, port, env)
    try:
        app.wait_healthy()
        with app.client() as client:
            accepted = submit(client, write_csv(tmp_path / "big.csv", 6_000))
            assert accepted.status_code == 202, accepted.text
            job = wait_for(client, accepted.json()["job_id"], lambda j: j["state"] != "queued" and
                           j["state"] != "running")
            assert job["state"] == "failed" and 0 < job["rows_done"] < 6_000
            assert "could not store" in job["error"] and "free disk space" in job["error"]
            too_big = submit(client, write_csv(tmp_path / "more.csv", 30_000))
            assert too_big.status_code == 507 and "free disk space" in too_big.json()["error"]
            assert client.get("/health").status_code == 200
            assert client.post("/api/classify", json={"text": "还在吗", "labels": LABELS}).status_code == 200
        assert process.poll() is None
        assert f"job {job['job_id']} failed" in log_path.read_text(errors="replace")
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(workspace, ignore_errors=True)
