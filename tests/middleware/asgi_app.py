"""The ASGI file server of one local storage, for uvicorn in a process of its own:
``uvicorn --factory tests.middleware.asgi_app:make``, the storage's directory in
``SA_DEPOT_TEST_STORAGE_PATH`` (configured as ``disk``), files at ``/depot/disk/<id>``."""

from __future__ import annotations

import os

from sa_depot.asgi import DepotMiddleware, make_middleware
from sa_depot.manager import DepotManager


def make() -> DepotMiddleware:
    DepotManager.configure("disk", {"depot.storage_path": os.environ["SA_DEPOT_TEST_STORAGE_PATH"]})
    return make_middleware(None)
