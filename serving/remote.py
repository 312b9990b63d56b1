"""RemoteEngine: the engine's public interface, answered by Ray Serve replicas over HTTP instead of in-process.

The web app uses it exactly like ``model_loader.Engine``: both implement
``model_loader.interface.EngineAPI`` (the type checker holds them to it), with the same result
types and the same error types. It needs no Ray, only the replicas' URL. A call whose replica
dies under it (the connection drops, or Ray Serve answers with a failure of its own) is sent
once more, and Ray Serve routes it to a live replica; if that fails too, the caller gets
ReplicaUnavailableError (a 503 with Retry-After). Every call ends within the timeout.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from model_loader.errors import InvalidInputError, ModelNotReadyError
from model_loader.results import Classification, Extraction, Generation, Summary
from model_loader.settings import Settings
from model_loader.tasks.options import (
    ClassifyRequest,
    ExtractRequest,
    GenerateRequest,
    SummarizeRequest,
    TaskRequest,
)

from .replicas import ClusterStatus, ReplicaInfo, devices_of
from .wire import ReplicaUnavailableError, decode_error, decode_result, encode_request

log = logging.getLogger(__name__)

STATUS_POLL_S = 2.0
# Status polls that fail in a row before the web app stops sending work: one lost poll is a
# replica dying under it, and Ray Serve routes the next one to another.
FAILED_POLLS_BEFORE_DOWN = 3
# A replica that has not answered for this long is left out of the status bar's list.
FORGET_AFTER_S = 30.0


class ReplicaLostError(Exception):
    """This attempt got no answer from a replica (it died, or none was routable); another may work."""


class RemoteEngine:
    def __init__(self, url: str, settings: Settings | None = None, timeout_s: float = 600.0,
                 target_replicas: int = 0, request_id: Callable[[], str] | None = None) -> None:
        self.url = url
        # The web layer validates against these limits before a call leaves; the replicas check again.
        self.settings = settings or Settings.from_env()
        self.timeout_s = timeout_s
        self.target_replicas = target_replicas
        self._request_id = request_id or (lambda: "-")
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, ReplicaInfo]] = {}
        self._answers: dict[str, int] = {}
        self._status = self._initial_status("idle")
        self._failed_polls = 0
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------

    @property
    def status(self) -> ClusterStatus:
        with self._lock:
            return self._status

    def load(self, device: str | None = None) -> None:
        """Wait until a replica answers (blocking), then keep the status fresh in the background."""
        if device is not None:
            raise InvalidInputError("the replicas' devices come from the Ray Serve deployment, not from the web app")
        self._set_status(self._initial_status("loading"))
        while not self._stop.is_set():
            self.refresh_status()
            if self.status.ready:
                break
            self._stop.wait(0.5)
        if self._poller is None:
            self._poller = threading.Thread(target=self._poll, name="replica-status", daemon=True)
            self._poller.start()

    def close(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
        self._set_status(self._initial_status("idle"))

    @property
    def queue_depth(self) -> int:
        """Requests wait in Ray Serve's queues, not here; Ray's own metrics count them."""
        return 0

    @property
    def queued_seconds(self) -> float:
        """The replicas' queues are theirs; the status bar shows none here."""
        return 0.0

    def available_devices(self) -> list[str]:
        """None to switch between: the deployment places each replica."""
        return []

    def switch_device(self, device: str) -> None:
        raise InvalidInputError(
            "the replicas' devices come from the Ray Serve deployment (num_gpus in its config), not from the UI"
        )

    def answers_by_replica(self) -> dict[str, int]:
        """How many calls each replica answered, since this web app started."""
        with self._lock:
            return dict(self._answers)

    # ---- the interface ------------------------------------------------------------------

    # Bad input is refused here, with the engine's own checked request types and messages, before any
    # replica is asked; what crosses the wire is the checked request.

    def classify(self, text: str, labels: str | Sequence[str]) -> Classification:
        return self._run(ClassifyRequest.checked(self.settings, text=text, labels=labels))

    def extract(self, text: str, fields: str | Sequence[str], threshold: float = 0.0,
                exclusive: bool = False) -> Extraction:
        return self._run(
            ExtractRequest.checked(self.settings, text=text, fields=fields, threshold=threshold, exclusive=exclusive)
        )

    def generate(self, prompt: str, max_new_tokens: int | None = None) -> Generation:
        return self._run(GenerateRequest.checked(self.settings, prompt=prompt, max_new_tokens=max_new_tokens))

    def summarize(self, text: str, max_chars: int | None = None) -> Summary:
        SummarizeRequest.checked(self.settings, text=text, max_chars=max_chars)
        # The similarity needs the embedding model beside SeqGPT, which replicas do not load.
        raise ModelNotReadyError(
            "摘要暂不支持副本模式 · summaries are not served through Ray Serve replicas yet: run the appliance "
            "without SEQGPT_REPLICAS / SEQGPT_ENGINE_URL to use /api/summarize and the knowledge base's summaries"
        )

    def health_check(self) -> None:
        """A real tiny forward pass on one replica, as the local engine's check does."""
        self._call("health", {}, timeout_s=60.0)

    # ---- plumbing ------------------------------------------------------------------------

    def _run(self, request: TaskRequest) -> Any:
        return decode_result(self._call(*encode_request(request)))

    def _call(self, call: str, kwargs: dict[str, Any], timeout_s: float | None = None) -> Any:
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        for attempt in (1, 2):
            try:
                return self._send(call, kwargs, deadline)
            except ReplicaLostError as exc:
                if attempt == 2 or time.monotonic() >= deadline:
                    raise ReplicaUnavailableError(
                        f"no replica could answer ({exc}); Ray Serve restarts failed replicas, try again shortly"
                    ) from None
                log.warning("engine call %s lost its replica (%s); retrying once", call, exc)
        raise AssertionError("unreachable")

    def _send(self, call: str, kwargs: dict[str, Any], deadline: float) -> Any:
        body = json.dumps({"call": call, "kwargs": kwargs, "request_id": self._request_id()}).encode()
        request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=max(0.1, deadline - time.monotonic())) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            # Ray Serve itself answered: the replica died mid-call (500), or none is routable (503, 404).
            detail = exc.read(200).decode("utf-8", "replace").strip().splitlines()
            raise ReplicaLostError(f"Ray Serve answered {exc.code}: {detail[0] if detail else exc.reason}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError, json.JSONDecodeError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):  # the time is up: a retry could not finish in time either
                raise ReplicaUnavailableError(
                    f"no answer from the replicas within {self.timeout_s:.0f} s; try again, "
                    "or raise SEQGPT_ENGINE_TIMEOUT_S"
                ) from None
            raise ReplicaLostError(f"{type(exc).__name__}: {reason}") from None
        replica = self._remember(answer.get("replica"), counted=call not in ("status", "health"))
        if call != "status":
            log.info("engine call=%s replica=%s ms=%.1f", call, replica, (time.perf_counter() - started) * 1000)
        if "error" in answer:
            raise decode_error(answer["error"])
        return answer.get("result")

    def _remember(self, identity: dict[str, Any] | None, counted: bool) -> str:
        if not identity:
            return "-"
        info = ReplicaInfo(**{k: identity[k] for k in ReplicaInfo.__dataclass_fields__ if k in identity})
        with self._lock:
            self._seen[info.replica_id] = (time.monotonic(), info)
            if counted:
                self._answers[info.replica_id] = self._answers.get(info.replica_id, 0) + 1
        return info.replica_id

    def refresh_status(self) -> None:
        """Ask one replica for its engine status and the deployment's replica counts."""
        try:
            answer = self._call("status", {}, timeout_s=10.0)
        except Exception as exc:  # no replica answers: the deployment is starting, or all are gone
            self._failed_polls += 1
            if not self.status.ready or self._failed_polls >= FAILED_POLLS_BEFORE_DOWN:
                # "loading": Ray Serve starts replicas again; the reason stays in the status for /health.
                self._set_status(self._initial_status("loading", f"no replica answers at {self.url}: {exc}"))
            return
        self._failed_polls = 0
        engine = decode_result(answer["engine"])
        deployment = answer["deployment"]
        now = time.monotonic()
        running = int(deployment.get("states", {}).get("RUNNING", 0))
        with self._lock:
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < FORGET_AFTER_S}
            replicas = live_replicas(self._seen, running)
        self._set_status(ClusterStatus(
            **{**engine.__dict__, "device": devices_of(replicas) or engine.device},
            target_replicas=self.target_replicas,
            deployment_health=deployment.get("health", ""),
            replica_states=dict(deployment.get("states", {})),
            replicas=replicas,
        ))

    def _poll(self) -> None:
        while not self._stop.wait(STATUS_POLL_S):
            self.refresh_status()

    def _initial_status(self, state: str, error: str | None = None) -> ClusterStatus:
        return ClusterStatus(state=state, device="", dtype="", model_dir=self.url, error=error,
                             target_replicas=self.target_replicas)

    def _set_status(self, status: ClusterStatus) -> None:
        with self._lock:
            self._status = status


def live_replicas(seen: dict[str, tuple[float, ReplicaInfo]], running: int) -> tuple[ReplicaInfo, ...]:
    """Pure: the replicas to list, by id. Where Ray Serve counts ``running`` replicas, those are the
    ones heard from most lately: a dead one drops out as soon as its replacement answers, instead
    of staying listed until FORGET_AFTER_S has passed. With no count, every one heard from lately."""
    by_recency = sorted(seen.values(), key=lambda entry: entry[0], reverse=True)
    kept = by_recency[:running] if running > 0 else by_recency
    return tuple(info for _, info in sorted(kept, key=lambda entry: entry[1].replica_id))
