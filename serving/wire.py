"""What crosses the HTTP boundary between the web app and a replica: calls, results and engine errors as JSON.

Pure functions, no Ray: both sides import this module. Results are the engine's own frozen
dataclasses, rebuilt field by field on the far side, so that what the web app renders is
exactly what a local engine would have returned (floats survive JSON unchanged).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from model_loader.errors import (
    AbandonedError,
    InvalidInputError,
    ModelLoadError,
    ModelNotReadyError,
    OverloadedError,
    SeqGPTError,
    SettingsError,
)
from model_loader.results import Classification, EngineStatus, Extraction, Generation, Mention
from model_loader.tasks.options import ClassifyRequest, ExtractRequest, GenerateRequest, TaskRequest

# Where the replicas live in Ray Serve: the application, its route and the deployment's name.
APP_NAME = "seqgpt"
ROUTE_PREFIX = "/seqgpt"
DEPLOYMENT_NAME = "SeqGPTEngine"

CALLS = ("classify", "extract", "generate", "health", "status")
RESULT_TYPES: dict[str, type] = {
    "Classification": Classification,
    "Extraction": Extraction,
    "Generation": Generation,
    "EngineStatus": EngineStatus,
}
# Engine errors keep their type across the boundary; anything else the replica raised is a bug there.
ERROR_TYPES: dict[str, type[SeqGPTError]] = {
    "InvalidInputError": InvalidInputError,
    "ModelNotReadyError": ModelNotReadyError,
    "ModelLoadError": ModelLoadError,
    "SettingsError": SettingsError,
    "OverloadedError": OverloadedError,
    "AbandonedError": AbandonedError,
    "SeqGPTError": SeqGPTError,
}


# A task call carries its checked request, field by field: the replica's engine builds the same type from them.
REQUEST_CALLS: dict[type, str] = {ClassifyRequest: "classify", ExtractRequest: "extract", GenerateRequest: "generate"}


def encode_request(request: TaskRequest) -> tuple[str, dict[str, Any]]:
    """The call's name and its keyword arguments, JSON-ready (tuples of labels become lists)."""
    if type(request) not in REQUEST_CALLS:
        raise TypeError(f"cannot send a {type(request).__name__} across the replica boundary")
    fields = dataclasses.asdict(request)
    return REQUEST_CALLS[type(request)], {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}


class ReplicaError(Exception):
    """A replica failed in a way that is not an engine error (a bug there); its log has the traceback."""


class ReplicaUnavailableError(ModelNotReadyError):
    """No replica answered: one died mid-request and the retry failed too, or none is running.

    A kind of "not ready", so that whatever handles that handles this; the web layer gives it a
    row of its own, with a shorter Retry-After, because Ray restarts a replica within seconds."""


def encode_result(result: object) -> dict[str, Any] | None:
    if result is None:
        return None
    name = type(result).__name__
    if name not in RESULT_TYPES or not dataclasses.is_dataclass(result) or isinstance(result, type):
        raise TypeError(f"cannot send a {name} across the replica boundary")
    return {"type": name, "data": dataclasses.asdict(result)}


def decode_result(payload: dict[str, Any] | None) -> Any:
    if payload is None:
        return None
    kind = RESULT_TYPES[payload["type"]]
    data = dict(payload["data"])
    if kind is Extraction:
        data["fields"] = {name: [Mention(**m) for m in mentions] for name, mentions in data["fields"].items()}
    known = {f.name for f in dataclasses.fields(kind)}
    # A replica on a newer engine may send fields this side does not know yet.
    return kind(**{key: value for key, value in data.items() if key in known})


def encode_error(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, OverloadedError):  # a replica's refusal keeps its estimate: the 503's Retry-After
        return {"type": "OverloadedError", "message": str(exc), "retry_after_s": exc.retry_after_s}
    for name, kind in ERROR_TYPES.items():  # most specific first
        if isinstance(exc, kind):
            return {"type": name, "message": str(exc)}
    return {"type": "ReplicaError", "message": f"{type(exc).__name__}: {exc}"}


def decode_error(payload: dict[str, Any]) -> Exception:
    kind = ERROR_TYPES.get(payload.get("type", ""), ReplicaError)
    message = payload.get("message", "the replica gave no reason")
    if kind is OverloadedError:
        return OverloadedError(message, retry_after_s=int(payload.get("retry_after_s", 10)))
    return kind(message)
