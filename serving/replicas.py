"""What the web app knows about the replicas behind it: one status for the whole deployment. Pure, no Ray."""

from __future__ import annotations

from dataclasses import dataclass, field

from model_loader.results import EngineStatus


@dataclass(frozen=True)
class ReplicaInfo:
    """One replica, as it described itself in its last answer."""

    replica_id: str
    pid: int
    node: str
    state: str
    device: str
    dtype: str
    is_demo: bool = False


@dataclass(frozen=True)
class ClusterStatus(EngineStatus):
    """The engine status of a deployment: ready while any replica answers.

    ``replica_states`` counts replicas by Ray Serve's state (RUNNING, STARTING, ...), as its
    controller reports them; ``replicas`` lists those that answered lately, with their devices."""

    # How many replicas this web app started (SEQGPT_REPLICAS); 0 where a cluster decides, autoscaling.
    target_replicas: int = 0
    # The deployment's health by Ray Serve: HEALTHY, UPDATING, UPSCALING, DOWNSCALING, UNHEALTHY.
    deployment_health: str = ""
    replica_states: dict[str, int] = field(default_factory=dict)
    replicas: tuple[ReplicaInfo, ...] = ()

    @property
    def running_replicas(self) -> int:
        return self.replica_states.get("RUNNING", 0)


def devices_of(replicas: tuple[ReplicaInfo, ...]) -> str:
    """``cpu`` for a CPU-only deployment, else each device with its count: ``cuda:0 ×2, cpu``."""
    counts: dict[str, int] = {}
    for replica in replicas:
        counts[replica.device] = counts.get(replica.device, 0) + 1
    if len(counts) == 1:
        return next(iter(counts))
    return ", ".join(f"{device} ×{count}" if count > 1 else device for device, count in counts.items())


def replicas_json(status: ClusterStatus) -> dict[str, object]:
    """The replicas part of /health."""
    return {
        "running": status.running_replicas,
        "target": status.target_replicas or None,
        "health": status.deployment_health,
        "states": dict(status.replica_states),
        "seen": [
            {"id": r.replica_id, "pid": r.pid, "node": r.node, "state": r.state, "device": r.device}
            for r in status.replicas
        ],
    }
