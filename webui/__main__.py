"""Entry point, ``python -m webui``: one process serving UI and API; the model loads once the port is open."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TYPE_CHECKING

from model_loader.errors import SeqGPTError, SettingsError
from model_loader.interface import EngineAPI
from model_loader.settings import Settings
from serving.settings import ClusterSettings

from .logging_setup import REQUEST_ID, configure_logging
from .startup_check import SETTINGS_EXIT_CODE, check_settings, refusal
from .workspace_privacy import keep_private

# torch, gradio and uvicorn are imported only once the settings are known to be good (see main).
if TYPE_CHECKING:
    import uvicorn


log = logging.getLogger("webui")


def load_when_listening(server: uvicorn.Server, engine: EngineAPI) -> None:
    """Load the weights once the server accepts connections, so /health can say "loading" meanwhile."""
    while not server.started:
        if server.should_exit:
            return
        time.sleep(0.05)
    log.info("listening; loading the model from %s", engine.settings.model_dir)
    try:
        engine.load()
    except SeqGPTError as exc:
        log.error("model load failed, /health answers 503 with the reason: %s", exc)
    except Exception:
        log.exception("model load failed unexpectedly; /health answers 503 with the reason")
    else:
        status = engine.status
        log.info(
            "model ready on %s (%s, weights %s) in %.1f s",
            status.device, status.dtype, status.weights, status.load_seconds or 0.0,
        )


def make_engine(cluster: ClusterSettings) -> EngineAPI:
    """The engine in this process, or the same interface answered by Ray Serve replicas (see serving/).
    In this process a bad engine setting leaves the server up, its message on /health and the status
    bar; in front of replicas it stops the start (SettingsError), as they would refuse it alike."""
    if cluster.replicas:
        settings = Settings.from_env()
        from serving.local import LocalCluster

        log.info("engine: %d local Ray Serve replicas", cluster.replicas)
        return LocalCluster(cluster, settings, request_id=REQUEST_ID.get)
    if cluster.engine_url:
        settings = Settings.from_env()
        from serving.remote import RemoteEngine

        log.info("engine: Ray Serve replicas at %s", cluster.engine_url)
        return RemoteEngine(cluster.engine_url, settings, cluster.timeout_s, request_id=REQUEST_ID.get)
    from model_loader.engine import Engine

    return Engine.from_env()


def main() -> int:
    # Within Supervisor's startsecs, before the slow imports: a bad setting then counts as a failed
    # start, and after startretries of them the program is FATAL instead of restarting forever, with
    # no half-started server answering /health meanwhile.
    try:
        checked = check_settings()
    except SettingsError as exc:
        print(refusal(exc), file=sys.stderr)
        return SETTINGS_EXIT_CODE
    settings, cluster = checked.server, checked.cluster
    configure_logging(settings.log_level)
    log.info("settings: %s, where the environment does not set them", checked.settings_file)
    if changed := keep_private(settings.workspace):
        log.info("workspace %s: %d files or folders made owner-only", settings.workspace, changed)
    import uvicorn

    from .app import build_app
    from .service.shutdown import DrainingServer, ShutdownClock

    try:
        engine = make_engine(cluster)
    except SettingsError as exc:
        print(refusal(exc), file=sys.stderr)
        return SETTINGS_EXIT_CODE
    clock = ShutdownClock()
    app = build_app(engine, settings, clock)
    server = DrainingServer(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,  # logging is configured above, once, to stdout
            access_log=False,  # the request log has one richer line per request
            timeout_graceful_shutdown=settings.graceful_shutdown_s,
            # Named rather than "auto": Ray's extra installs uvloop and httptools, and the appliance
            # must answer HTTP the same with or without it.
            http="h11",
            loop="asyncio",
        ),
        clock,
    )
    threading.Thread(target=load_when_listening, args=(server, engine), name="model-load", daemon=True).start()
    log.info("serving on http://%s:%d (auth %s)", settings.host, settings.port, "on" if settings.auth else "off")
    server.run()
    if cluster.remote:
        engine.close()  # local replicas and their Ray cluster go with the app
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
