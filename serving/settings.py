"""Scale-out settings, read from ``SEQGPT_*`` variables in one place; none set means one local engine."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial

from model_loader.settings import env_setting


class ClusterSettingsError(ValueError):
    """A scale-out variable has a value that cannot be used; the message says how to fix it."""


@dataclass(frozen=True)
class ClusterSettings:
    """Where the engine runs: in this process (the default), on N local Ray Serve replicas, or behind a URL."""

    # SEQGPT_REPLICAS: this many replicas on a Ray cluster this process starts; 0 keeps the engine in-process.
    replicas: int = 0
    # SEQGPT_ENGINE_URL: the Ray Serve route of replicas that run elsewhere (a cluster's head node).
    engine_url: str = ""
    # CPUs and GPUs Ray reserves for each local replica; fractions let several share a core or a card.
    replica_cpus: float = 1.0
    replica_gpus: float = 0.0
    # Requests one replica takes at once; its engine batches them. More wait in Ray Serve's queue.
    max_ongoing_requests: int = 16
    # Ray Serve's HTTP port for local replicas, on 127.0.0.1 only.
    serve_port: int = 8000
    # Longest a call may take, retry included; the engine's own limit is as long.
    timeout_s: float = 600.0

    @property
    def remote(self) -> bool:
        return self.replicas > 0 or bool(self.engine_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClusterSettings:
        env = os.environ if environ is None else environ

        get = partial(env_setting, env)

        replicas = _number("REPLICAS", get("REPLICAS"), int, 0, 0)
        url = (get("ENGINE_URL") or "").rstrip("/")
        if replicas and url:
            raise ClusterSettingsError(
                "SEQGPT_REPLICAS and SEQGPT_ENGINE_URL are both set: SEQGPT_REPLICAS starts replicas on this "
                "machine, SEQGPT_ENGINE_URL uses replicas elsewhere; keep one"
            )
        if url and not url.startswith(("http://", "https://")):
            raise ClusterSettingsError(
                f"SEQGPT_ENGINE_URL={url!r} is not an http(s) address: give the Ray Serve route of the replicas, "
                "e.g. http://head-node:8000/seqgpt"
            )
        default_cpus = max(0.1, round((os.cpu_count() or 1) / max(1, replicas), 2))
        return cls(
            replicas=replicas,
            engine_url=url,
            replica_cpus=_number("REPLICA_CPUS", get("REPLICA_CPUS"), float, default_cpus, 0.01),
            replica_gpus=_number("REPLICA_GPUS", get("REPLICA_GPUS"), float, 0.0, 0.0),
            max_ongoing_requests=_number("REPLICA_MAX_ONGOING", get("REPLICA_MAX_ONGOING"), int, 16, 1),
            serve_port=_number("SERVE_PORT", get("SERVE_PORT"), int, 8000, 1),
            timeout_s=_number("ENGINE_TIMEOUT_S", get("ENGINE_TIMEOUT_S"), float, 600.0, 1.0),
        )


def _number(name: str, raw: str | None, kind: type, default: float, minimum: float):  # noqa: ANN202
    if raw is None:
        return default
    try:
        value = kind(raw)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ClusterSettingsError(f"SEQGPT_{name}={raw!r} is not {what}") from None
    if value < minimum:
        raise ClusterSettingsError(f"SEQGPT_{name} must be at least {minimum} (got {value})")
    return value
