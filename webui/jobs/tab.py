"""The jobs part of the batch tab: run the uploaded file as a durable job, and the list of jobs with progress."""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

import anyio.to_thread
import gradio as gr

from model_loader.errors import InvalidInputError

from ..service.request import RequestInfo
from ..ui.tabs import UiContext, start_ui_request, ui_error
from .room import JobsRoom
from .store import Job

REFRESH_S = 2.0
LISTED = 20
STATE_NAMES = {
    "queued": "排队 queued", "running": "运行中 running", "done": "完成 done",
    "failed": "失败 failed", "cancelled": "已取消 cancelled",
}


def jobs_section(ctx: UiContext, upload: gr.File, task: gr.Radio, labels: gr.Textbox, threshold: gr.Slider,
                 exclusive: gr.Checkbox) -> None:
    """Built inside the batch tab, sharing its file, task and label inputs."""
    room: JobsRoom = ctx.jobs
    limits = ctx.settings
    mib = limits.jobs_max_bytes // 1048576
    gr.Markdown(
        f"### 大文件任务 Durable jobs\n大文件（最多 {limits.jobs_max_rows:,} 行、{mib} MiB）作为任务在后台运行："
        "刷新页面或重启服务后仍在，完成后可下载结果。 · Big files (up to "
        f"{limits.jobs_max_rows:,} rows, {mib} MiB) run as jobs in the background: they "
        f"survive a page reload and a restart; download the results when done. Finished jobs are kept "
        f"{limits.jobs_retention_days} days."
    )
    submit = gr.Button("作为任务运行 Run as a job", elem_id="jobs-submit")
    listing = gr.HTML(lambda: render_jobs(room), elem_id="jobs-list")
    with gr.Row():
        chosen = gr.Textbox(label="任务编号 Job id", elem_id="jobs-id", scale=3)
        cancel = gr.Button("取消任务 Cancel job", elem_id="jobs-cancel", scale=1)

    async def submit_job(file: str | None, task: str, labels: str, threshold: Any, exclusive: Any) -> tuple[str, str]:
        start_ui_request()
        started = time.perf_counter()
        try:
            if not file:
                raise InvalidInputError("没有文件 · no file: upload a CSV, JSONL or TXT file first")
            job_request = room.check_request(task, labels, threshold, exclusive)

            def accept() -> Job:
                with open(file, "rb") as source:
                    return room.submit(job_request, source, Path(file).name)

            job = await anyio.to_thread.run_sync(accept)
        except Exception as exc:  # worded by the outcome table, logged by the service
            ctx.service.record(RequestInfo("jobs", "ui", ""), started, exc)
            raise ui_error(exc) from None
        gr.Info(f"任务已提交 · job {job.id} queued: {job.rows_total} rows")
        return render_jobs(room), job.id

    async def cancel_job(job_id: str) -> str:
        start_ui_request()
        started = time.perf_counter()
        try:
            if not (job_id or "").strip():
                raise InvalidInputError("缺少任务编号 · type the id of the job to cancel: the list above shows them")
            job = await anyio.to_thread.run_sync(room.cancel, job_id.strip())
        except Exception as exc:
            ctx.service.record(RequestInfo("jobs", "ui", job_id or ""), started, exc)
            raise ui_error(exc) from None
        gr.Info(f"任务 {job.id}: {STATE_NAMES[job.state]}")
        return render_jobs(room)

    submit.click(submit_job, [upload, task, labels, threshold, exclusive], [listing, chosen],
                 api_visibility="private")
    cancel.click(cancel_job, chosen, listing, api_visibility="private")
    timer = gr.Timer(REFRESH_S)
    # Outside the queue: the list reads the store only, and must move while the model is busy.
    timer.tick(lambda: render_jobs(room), None, listing, queue=False, show_progress="hidden",
               api_visibility="private")


def render_jobs(room: JobsRoom) -> str:
    """The newest jobs as an HTML table: state, a progress bar, rows, failures, ETA and download links."""
    if room.store is None:
        return f"<p class='jobs-off'>{html.escape(room.unavailable or '')}</p>"
    jobs = room.store.list_jobs(LISTED)
    if not jobs:
        return "<p id='jobs-empty'>还没有任务 · No jobs yet</p>"
    lines = [
        "<table class='jobs-table'><tr><th>任务 Job</th><th>文件 File</th><th>状态 State</th><th>进度 Progress</th>"
        "<th>失败 Failed</th><th>剩余 ETA</th><th>下载 Download</th></tr>"
    ]
    for job in jobs:
        answer = room.to_json(job)
        eta = f"{answer['eta_s']:.0f} s" if answer["eta_s"] is not None else ""
        links = " ".join(
            f"<a href='/api/jobs/{job.id}/results?format={fmt}' download class='jobs-{fmt}'>{fmt.upper()}</a>"
            for fmt in ("csv", "jsonl")
        ) if job.rows_done else ""
        error = f"<br><small>{html.escape(job.error)}</small>" if job.error else ""
        lines.append(
            f"<tr data-job='{job.id}' data-state='{job.state}'><td><code>{job.id}</code></td>"
            f"<td>{html.escape(job.input_name)}</td><td>{STATE_NAMES[job.state]}{error}</td>"
            f"<td><progress value='{job.rows_done}' max='{job.rows_total}'></progress> "
            f"<span class='jobs-rows'>{job.rows_done:,} / {job.rows_total:,}</span></td>"
            f"<td>{job.rows_failed:,}</td><td>{eta}</td><td>{links}</td></tr>"
        )
    lines.append("</table>")
    return "".join(lines)
