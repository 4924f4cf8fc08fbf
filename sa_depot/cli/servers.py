"""``sa-depot serve`` and ``sa-depot demo``: WSGI applications run by waitress."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sa_depot.cli.access_log import AccessLog
from sa_depot.cli.base import CliState, pass_state
from sa_depot.cli.config import DEFAULT_MOUNTPOINT
from sa_depot.exceptions import ConfigurationError
from sa_depot.manager import DepotManager

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

DEFAULT_HOST = "127.0.0.1"
DEFAULT_SERVE_PORT = 8080
DEFAULT_DEMO_PORT = 8765
DEFAULT_DEMO_DIR = ".sa_depot_demo"


def run_server(
    app: WSGIApplication,
    host: str,
    port: int,
    threads: int,
    announce: Callable[[str], None],
) -> None:
    """Serve ``app`` with waitress on ``host:port`` until interrupted, writing one access log
    line per request on standard error.

    ``announce`` receives the base URL (with the port actually bound, so ``port=0`` picks a
    free one) once the socket listens.
    """
    from waitress.server import create_server

    logged = AccessLog(app, lambda line: click.echo(line, err=True))
    try:
        server = create_server(logged, host=host, port=port, threads=threads, ident="sa-depot")
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port "
            "(0 picks a free one)"
        ) from exc
    except ValueError as exc:  # waitress refuses the host or port
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from exc
    bound_port = getattr(server, "effective_port", port)
    shown_host = f"[{host}]" if ":" in host else host
    announce(f"http://{shown_host}:{bound_port}")
    try:
        server.run()
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    finally:
        server.close()


@click.command("serve", short_help="Serve the configured storages over HTTP.")
@click.option("--host", envvar="SA_DEPOT_HOST", help=f"Address to listen on [{DEFAULT_HOST}].")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    envvar="SA_DEPOT_PORT",
    help=f"Port to listen on; 0 picks a free one [{DEFAULT_SERVE_PORT}].",
)
@click.option("--mountpoint", help="URL prefix of the files [/depot].")
@click.option(
    "--secret",
    help="Key of signed URLs (else [serve] secret or $SA_DEPOT_SECRET); at least 16 bytes.",
)
@click.option("--threads", type=click.IntRange(1, 1024), help="Worker threads [4].")
@pass_state
def serve_command(
    state: CliState,
    host: str | None,
    port: int | None,
    mountpoint: str | None,
    secret: str | None,
    threads: int | None,
) -> None:
    """Serve the configured storages over HTTP through DepotMiddleware.

    Files are at <mountpoint>/<storage>/<file_id>; every other URL is 404. The serving policy
    of each storage comes from the [serve.policies.<storage>] table of the configuration.
    One line per request is logged on standard error.
    """
    names = state.configure_storages()
    options = state.settings.serve
    middleware_options: dict[str, Any] = {
        "mountpoint": mountpoint or options.get("mountpoint", DEFAULT_MOUNTPOINT),
        "policies": _policies(options.get("policies", {})),
    }
    if "cache_max_age" in options:
        middleware_options["cache_max_age"] = options["cache_max_age"]
    secret = secret or options.get("secret")
    if secret:
        middleware_options["secret"] = secret
    middleware = DepotManager.make_middleware(None, **middleware_options)

    def announce(base_url: str) -> None:
        prefix = middleware.mountpoint
        click.echo(f"Serving {', '.join(names)} at {base_url}{prefix}/<storage>/<file_id>")
        click.echo("Press Ctrl+C to stop.")

    run_server(
        middleware,
        host or options.get("host", DEFAULT_HOST),
        _port(port if port is not None else options.get("port", DEFAULT_SERVE_PORT)),
        threads or options.get("threads", 4),
        announce,
    )


def _port(value: object) -> int:
    if not isinstance(value, int) or not 0 <= value <= 65535:
        raise ConfigurationError(f"[serve] port {value!r}: use a number from 0 to 65535")
    return value


def _policies(tables: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from sa_depot.serving.policy import ServingPolicy

    policies: dict[str, Any] = {}
    for storage, table in tables.items():
        DepotManager.get(storage)  # a policy for an unknown storage is a typo
        options = dict(table)
        if "inline_types" in options:
            options["inline_types"] = frozenset(options["inline_types"])
        try:
            policies[storage] = ServingPolicy(**options)
        except TypeError as exc:
            raise ConfigurationError(f"[serve.policies.{storage}]: {exc}") from exc
        except ConfigurationError as exc:
            raise ConfigurationError(f"[serve.policies.{storage}]: {exc}") from exc
    return policies


@click.command("demo", short_help="Run the demo web application (no configuration needed).")
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_DEMO_PORT,
    show_default=True,
    help="Port to listen on; 0 picks a free one.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DEMO_DIR,
    show_default=True,
    help="Folder of the demo's SQLite database and files (created if missing).",
)
@click.option(
    "--max-upload-mib",
    type=click.IntRange(1, 1024 * 1024),
    default=256,
    show_default=True,
    help="The largest upload accepted, in MiB (the page says so before an upload).",
)
def demo_command(host: str, port: int, data_dir: Path, max_upload_mib: int) -> None:
    """Run the demo web application: upload files and images, see them listed with
    thumbnails, view, download and delete them.

    It uses SQLite and a local storage in --data-dir, and serves the files through
    DepotMiddleware. It needs no configuration. One line per request is logged on standard
    error.
    """
    from sa_depot.demo import make_app

    DepotManager.reset()
    app = make_app(data_dir, max_upload_bytes=max_upload_mib * 1024 * 1024)

    def announce(base_url: str) -> None:
        click.echo(f"sa_depot demo running at {base_url}/")
        click.echo(f"  data (SQLite database and files): {data_dir.resolve()}")
        click.echo("  Press Ctrl+C to stop.")

    run_server(app, host, port, 4, announce)


__all__ = ["demo_command", "run_server", "serve_command"]
