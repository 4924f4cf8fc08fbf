"""The WSGI applications the serving benchmark runs under gunicorn.

    gunicorn benchmarks.serve_apps:sa_depot_app   (BENCH_SA_PATH: a LocalFileStorage directory)
    gunicorn benchmarks.serve_apps:filedepot_app  (BENCH_FD_PATH: a filedepot local directory)

sa_depot's app serves one directory under two storage names: ``files`` served by the
middleware itself, ``accel`` handed to nginx with X-Accel-Redirect.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any


def not_found(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]


def make_sa_depot_app() -> Any:
    from sa_depot.manager import DepotManager
    from sa_depot.middleware import DepotMiddleware, ServingPolicy

    path = os.environ["BENCH_SA_PATH"]
    DepotManager.configure("files", {"depot.storage_path": path})
    DepotManager.configure("accel", {"depot.storage_path": path})
    accel = ServingPolicy(x_accel_redirect={path: "/_depot_files"})
    return DepotMiddleware(None, policies={"accel": accel})


def make_filedepot_app() -> Any:
    from depot.manager import DepotManager

    DepotManager.configure("files", {"depot.storage_path": os.environ["BENCH_FD_PATH"]})
    return DepotManager.make_middleware(not_found)


def __getattr__(name: str) -> Any:  # build only the app gunicorn asks for
    if name == "sa_depot_app":
        return make_sa_depot_app()
    if name == "filedepot_app":
        return make_filedepot_app()
    raise AttributeError(name)
