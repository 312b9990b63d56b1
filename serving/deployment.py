"""The engine as a Ray Serve deployment: each replica loads the model once and answers the web app over HTTP.

A replica is one ``model_loader.Engine`` with its own batching worker; Ray Serve routes each
request to a replica, places replicas on CPUs or GPUs, and restarts dead ones. The one route
takes ``{"call": ..., "kwargs": ..., "request_id": ...}`` and answers ``{"replica": ..., "result": ...}``
or ``{"replica": ..., "error": ...}`` (see wire.py). Imported only where Ray is installed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

from model_loader.engine import Engine
from model_loader.settings import Settings

from .wire import APP_NAME, CALLS, DEPLOYMENT_NAME, encode_error, encode_result

# Ray Serve writes this logger to each replica's own log file (logs/serve/replica_*.log in the Ray session).
log = logging.getLogger("ray.serve")

@serve.deployment(name=DEPLOYMENT_NAME, health_check_period_s=5, health_check_timeout_s=60)
class EngineReplica:
    """One engine replica. ``env`` holds SEQGPT_* settings that override the replica's own environment."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        settings = Settings.from_env({**os.environ, **(env or {})})
        self.engine = Engine(settings)
        # Work calls wait on the engine's batching worker, each holding a thread; their own pool keeps
        # status and health answers from queueing behind them. Sized for Ray Serve's
        # max_ongoing_requests, which caps the calls a replica takes at once.
        self.pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="seqgpt-call")
        # Loading here makes a replica RUNNING only once it can answer; a load that fails fails
        # the replica's start, and Ray Serve reports the error and tries again.
        self.engine.load()
        self.replica_id = serve.get_replica_context().replica_id.unique_id
        self.node = socket.gethostname()
        status = self.engine.status
        log.info("replica %s (pid %d) ready on %s (%s)", self.replica_id, os.getpid(), status.device, status.dtype)

    def identity(self) -> dict[str, Any]:
        status = self.engine.status
        return {
            "replica_id": self.replica_id,
            "pid": os.getpid(),
            "node": self.node,
            "state": status.state,
            "device": status.device,
            "dtype": status.dtype,
            "is_demo": status.is_demo,
        }

    async def __call__(self, request: Request) -> JSONResponse:
        body = await request.json()
        call, kwargs, request_id = body.get("call"), body.get("kwargs") or {}, body.get("request_id", "-")
        started = time.perf_counter()
        try:
            if call not in CALLS:
                raise ValueError(f"unknown call {call!r}")
            if call in ("status", "health"):
                result = await asyncio.to_thread(self._run, call, kwargs)
            else:
                result = await asyncio.get_running_loop().run_in_executor(self.pool, self._run, call, kwargs)
        except Exception as exc:  # every error goes back to the web app, which maps it to HTTP
            answer = {"replica": self.identity(), "error": encode_error(exc)}
            log.info("request_id=%s call=%s outcome=%s %s", request_id, call, answer["error"]["type"], exc)
            return JSONResponse(answer)
        log.info("request_id=%s call=%s ms=%.1f", request_id, call, (time.perf_counter() - started) * 1000)
        return JSONResponse({"replica": self.identity(), "result": result})

    def _run(self, call: str, kwargs: dict[str, Any]) -> Any:
        if call == "status":
            return {"engine": encode_result(self.engine.status), "deployment": deployment_summary()}
        if call == "health":
            self.engine.health_check()
            return None
        return encode_result(getattr(self.engine, call)(**kwargs))

    def check_health(self) -> None:
        """Ray Serve's periodic check: a real tiny forward pass. Raising makes Ray replace the replica."""
        self.engine.health_check()

    def __del__(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.close()
            self.pool.shutdown(wait=False)


def deployment_summary() -> dict[str, Any]:
    """Replica counts by state, and the deployment's health, as the Serve controller reports them."""
    app = serve.status().applications.get(APP_NAME)
    deployment = app.deployments.get(DEPLOYMENT_NAME) if app else None
    if deployment is None:
        return {"states": {}, "health": "UNKNOWN", "message": "the deployment is not known to Ray Serve"}
    states = {str(getattr(state, "value", state)): count for state, count in deployment.replica_states.items()}
    health = str(getattr(deployment.status, "value", deployment.status))
    return {"states": states, "health": health, "message": deployment.message}


def build(args: dict[str, Any]) -> serve.Application:
    """The application a serve config file names (``import_path: serving.deployment:build``).

    ``args`` may hold ``env``: SEQGPT_* settings for every replica (model folder, device, ...)."""
    env = {str(k): str(v) for k, v in (args.get("env") or {}).items()}
    return EngineReplica.bind(env)  # type: ignore[attr-defined]  # @serve.deployment made it a Deployment
