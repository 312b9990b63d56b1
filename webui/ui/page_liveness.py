"""What keeps the page honest about the server: long runs shown on the status bar, a lost connection
shown as lost, and the texts a user typed kept across Gradio's reload on reconnect."""

from __future__ import annotations

import html
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

# The boxes whose typed text survives a reload (sessionStorage: this tab only, gone when it closes).
KEPT_INPUTS = ("classify-text", "classify-labels", "extract-text", "extract-fields", "generate-prompt",
               "batch-labels", "evaluate-map")
# How often the page checks that the server still answers, and how long one check may take.
PROBE_EVERY_MS = 2000
PROBE_TIMEOUT_MS = 4000


@dataclass
class LongRuns:
    """Batches and evaluations running now, with their progress, for the status bar."""

    _runs: dict[int, list] = field(default_factory=dict)
    _next: int = 0

    @contextmanager
    def track(self, kind: str, total: int) -> Iterator[list]:
        """Registers a run for its duration; the caller updates ``[kind, done, total][1]`` as rows finish."""
        self._next += 1
        key, entry = self._next, [kind, 0, total]
        self._runs[key] = entry
        try:
            yield entry
        finally:
            del self._runs[key]

    def text(self) -> str:
        """Pure over the current runs: ``批量处理中 Batch running: 120/1000`` per run, or empty when idle."""
        names = {"batch": "批量处理中 Batch running", "evaluate": "评测中 Evaluation running"}
        return " · ".join(f"{names.get(kind, kind)}: {done}/{total}" for kind, done, total in self._runs.values())


def activity_html(runs: LongRuns, running: int, waiting: int, queued_s: float = 0.0) -> str:
    """A line under the status bar while work is going on; empty when the server is idle. ``queued_s``: the
    engine's estimate of the model's queued work, which is how long a request sent now would wait."""
    parts = [runs.text()] if runs.text() else []
    if running or waiting:
        parts.append(f"请求 Requests: {running} 运行 running, {waiting} 等待 waiting")
    if queued_s >= 1:  # under a second is no wait worth telling
        parts.append(f"排队约 {queued_s:.0f} 秒 · about {queued_s:.0f} s of work queued")
    if not parts:
        return ""
    return (f'<div class="seqgpt-activity" style="margin-top:4px;font-size:13px;color:#5f6368">⏳ '
            f"{html.escape(' · '.join(parts))}</div>")


def page_script() -> str:
    """The <script> for the page's head: marks the status bar when the server stops answering HTTP at all,
    and saves and restores the KEPT_INPUTS across a reload."""
    kept = ", ".join(f'"{name}"' for name in KEPT_INPUTS)
    return f"""<script>
(() => {{
  const KEPT = [{kept}];
  const store = window.sessionStorage;
  const box = (id) => document.querySelector(`#${{id}} textarea, #${{id}} input`);
  const bar = () => document.querySelector("#seqgpt-status .seqgpt-status");
  function markLost() {{
    const el = bar();
    if (!el || el.dataset.level === "offline") return;
    el.dataset.level = "offline";
    el.className = "seqgpt-status seqgpt-status-offline";
    el.style.background = "#fdecea";
    el.style.borderLeft = "6px solid #c5221f";
    el.innerHTML = '<span style="color:#c5221f;font-weight:bold">●</span> 连接中断 Connection lost: ' +
      'the server does not answer (restarting?); reconnecting… 输入的文字会保留 · typed text is kept';
  }}
  async function probe() {{
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), {PROBE_TIMEOUT_MS});
    // Any HTTP answer means the server is up. Not /health: that runs the model once per call.
    try {{ await fetch("api/openapi.json", {{method: "HEAD", cache: "no-store", signal: abort.signal}}); }}
    catch (err) {{ markLost(); }}
    finally {{ clearTimeout(timer); }}
  }}
  setInterval(probe, {PROBE_EVERY_MS});
  document.addEventListener("input", (event) => {{
    for (const id of KEPT) {{
      if (box(id) === event.target) store.setItem("seqgpt:" + id, event.target.value);
    }}
  }}, true);
  const restore = setInterval(() => {{
    if (!box(KEPT[0])) return;
    clearInterval(restore);
    for (const id of KEPT) {{
      const saved = store.getItem("seqgpt:" + id), el = box(id);
      if (saved === null || !el || el.value === saved) continue;
      el.value = saved;
      el.dispatchEvent(new Event("input", {{bubbles: true}}));
    }}
  }}, 200);
}})();
</script>"""
