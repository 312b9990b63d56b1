"""LocalCluster: SEQGPT_REPLICAS=N. This process starts a one-machine Ray cluster, deploys N replicas, and uses them.

Ray is imported only here and only when ``load`` runs, so the single-box appliance never
pays for it. Nothing calls out: usage statistics are off and there is no dashboard.

Ray ties the processes it starts (its GCS and raylet) to the life of the *thread* that started
them (PR_SET_PDEATHSIG), so they are started from a thread of their own that lives until
``close``: started from the short-lived model-load thread, they were killed the moment it ended.
When this process dies, even by SIGKILL, they die with it, and the replicas with them.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from model_loader.errors import ModelLoadError
from model_loader.settings import Settings

from .remote import RemoteEngine
from .settings import ClusterSettings
from .wire import APP_NAME, DEPLOYMENT_NAME, ROUTE_PREFIX

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent


class LocalCluster(RemoteEngine):
    def __init__(
        self, cluster: ClusterSettings, settings: Settings | None = None, request_id: Callable[[], str] | None = None
    ) -> None:
        super().__init__(f"http://127.0.0.1:{cluster.serve_port}{ROUTE_PREFIX}", settings, cluster.timeout_s,
                         target_replicas=cluster.replicas, request_id=request_id)
        self.cluster = cluster
        self._closing = threading.Event()
        self._keeper: threading.Thread | None = None

    def load(self, device: str | None = None) -> None:
        """Start Ray and the replicas (blocking until they run), then follow them like any remote engine."""
        self._set_status(self._initial_status("loading"))
        started: Future[None] = Future()
        self._keeper = threading.Thread(target=self._keep_ray, args=(started,), name="ray-cluster", daemon=True)
        self._keeper.start()
        try:
            started.result()
        except Exception as exc:
            self._set_status(self._initial_status("error", f"starting the replicas failed: {exc}"))
            raise ModelLoadError(f"starting {self.cluster.replicas} Ray Serve replicas failed: {exc}") from exc
        super().load(device)

    def _keep_ray(self, started: Future[None]) -> None:
        """Start Ray and the replicas, then hold the thread (and so Ray's processes) until ``close``."""
        try:
            self._start()
        except BaseException as exc:
            started.set_exception(exc)
            self._shutdown()
            return
        started.set_result(None)
        self._closing.wait()
        self._shutdown()

    def _start(self) -> None:
        os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # before Ray is imported: it reads it once
        # Replicas import model_loader and serving from this checkout, wherever Ray starts them.
        path = os.environ.get("PYTHONPATH", "")
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), path) if p)
        import ray
        from ray import serve

        from .deployment import EngineReplica

        cluster = self.cluster
        log.info("starting a local Ray cluster with %d replicas (%s CPUs, %s GPUs each)",
                 cluster.replicas, cluster.replica_cpus, cluster.replica_gpus)
        # "local": a cluster of its own, even where `ray start` left one running on this machine.
        ray.init(address="local", include_dashboard=False, configure_logging=False, log_to_driver=False,
                 namespace=APP_NAME)
        serve.start(http_options={"host": "127.0.0.1", "port": cluster.serve_port,
                                  "request_timeout_s": cluster.timeout_s})
        env = {k: v for k, v in os.environ.items() if k.startswith("SEQGPT_")}
        # Each replica computes on its share of the cores, so replicas do not fight over them.
        env.setdefault("SEQGPT_TORCH_THREADS", str(max(1, int(cluster.replica_cpus))))
        replica = EngineReplica.options(  # type: ignore[attr-defined]  # a Deployment, by @serve.deployment
            name=DEPLOYMENT_NAME,
            num_replicas=cluster.replicas,
            max_ongoing_requests=cluster.max_ongoing_requests,
            ray_actor_options={"num_cpus": cluster.replica_cpus, "num_gpus": cluster.replica_gpus},
        )
        serve.run(replica.bind(env), name=APP_NAME, route_prefix=ROUTE_PREFIX)
        log.info("%d replicas running behind %s", cluster.replicas, self.url)

    def close(self) -> None:
        super().close()
        self._closing.set()
        if self._keeper is not None:
            self._keeper.join(timeout=60)

    def _shutdown(self) -> None:
        if "ray" not in sys.modules:
            return  # never started
        import ray
        from ray import serve

        if ray.is_initialized():
            serve.shutdown()
            ray.shutdown()
