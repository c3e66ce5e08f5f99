"""`guard serve`: run the HTTP service (uvicorn, `--workers` processes, each loading the models once)."""

from __future__ import annotations

import os

import click

from guard.settings import (
    SERVE_HOST,
    SERVE_MODEL,
    SERVE_PORT,
    SERVE_PUBLIC,
    SERVE_WORKERS,
    STORE_URL,
    env_int,
)


@click.command("serve")
@click.option("--host", default=None, help=f"Address to listen on (default {SERVE_HOST} or 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help=f"Port (default {SERVE_PORT} or 8000).")
@click.option(
    "--workers", type=click.IntRange(min=1), default=None, help=f"Worker processes (default {SERVE_WORKERS} or 1)."
)
@click.option(
    "--policy",
    "policy_ref",
    default=None,
    metavar="NAME|PATH",
    help="Bundled policy name or a YAML file; default from GUARD_POLICY.",
)
@click.option("--store", "store_url", default=None, metavar="URL", help=f"Manifest store URL (default {STORE_URL}).")
@click.option(
    "--public",
    "public",
    multiple=True,
    metavar="GROUP",
    help=f"Serve an endpoint group without an API key: verify, resolution, metrics (repeatable; or {SERVE_PUBLIC}).",
)
@click.option("--model", default=None, metavar="ID|PATH", help=f"Model for POST /v1/generate (or {SERVE_MODEL}).")
@click.option(
    "--forwarded-allow-ips",
    default=None,
    metavar="IPS",
    help="Proxies (comma-separated IPs, or *) whose X-Forwarded-For/-Proto headers are trusted.",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
)
def serve(
    host: str | None,
    port: int | None,
    workers: int | None,
    policy_ref: str | None,
    store_url: str | None,
    public: tuple[str, ...],
    model: str | None,
    forwarded_allow_ips: str | None,
    log_level: str,
) -> None:
    """Serve the moderation and provenance API, the C2PA soft binding resolution API and the verification page.

    Settings come from GUARD_* variables (see docs/service.md); the options here override them. The options
    are written into the environment, so every worker process starts with the same settings.
    """
    import uvicorn

    from guard.provenance.credentials.store import ManifestStore
    from guard.serve.config import ServeSettings, parse_public
    from guard.serve.metrics import clear_multiprocess_dir
    from policies import load_policy
    from policies.settings import POLICY

    if policy_ref:
        os.environ[POLICY] = policy_ref
    if store_url:
        os.environ[STORE_URL] = store_url
    if public:
        os.environ[SERVE_PUBLIC] = ",".join(sorted(parse_public(",".join(public))))
    if model:
        os.environ[SERVE_MODEL] = model
    # Check the settings, the policy and the store here, so a mistake is one line, not a worker's traceback.
    ServeSettings.from_env()
    load_policy(None)
    ManifestStore.open().close()
    clear_multiprocess_dir()
    uvicorn.run(
        "guard.serve.app:create_app",
        factory=True,
        host=host or os.environ.get(SERVE_HOST) or "127.0.0.1",
        port=port if port is not None else env_int(SERVE_PORT, 8000),
        workers=workers or env_int(SERVE_WORKERS, 1),
        log_level=log_level,
        lifespan="on",
        proxy_headers=forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips,
        server_header=False,
        timeout_graceful_shutdown=30,
    )
