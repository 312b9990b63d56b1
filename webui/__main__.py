"""Entry point, ``python -m webui``: one process serving UI and API; the model loads once the port is open."""

from __future__ import annotations

import logging
import sys
import threading
import time

import uvicorn

from model_loader.engine import Engine
from model_loader.errors import SeqGPTError, SettingsError
from model_loader.settings_file import load_settings_file

from .app import build_app
from .logging_setup import configure_logging
from .settings import ServerSettings
from .shutdown import DrainingServer, ShutdownClock

log = logging.getLogger("webui")


def load_when_listening(server: uvicorn.Server, engine: Engine) -> None:
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
        log.info("model ready on %s (%s) in %.1f s", status.device, status.dtype, status.load_seconds or 0.0)


def main() -> int:
    try:
        settings_file = load_settings_file()  # before the settings are read: it fills in the environment
        settings = ServerSettings.from_env()
    except SettingsError as exc:  # without a port to listen on there is nothing to show it on
        print(f"seqgpt: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    log.info("settings: %s, where the environment does not set them", settings_file)
    # A bad engine setting leaves the server up, its message on /health and the status bar.
    engine = Engine.from_env()
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
        ),
        clock,
    )
    threading.Thread(target=load_when_listening, args=(server, engine), name="model-load", daemon=True).start()
    log.info("serving on http://%s:%d (auth %s)", settings.host, settings.port, "on" if settings.auth else "off")
    server.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
