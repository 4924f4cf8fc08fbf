"""A Flask extension with Flask-Store's API: :class:`Store`.

An application written for Flask-Store keeps its configuration and its code::

    from sa_depot.flask import Store          # was: from flask_store import Store

    app.config["STORE_PATH"] = "/var/uploads"
    app.config["STORE_DOMAIN"] = "https://example.com"
    store = Store(app)                         # or Store() and store.init_app(app)

    @app.post("/upload")
    def upload():
        saved = store.Provider().save(request.files["afile"])
        return saved.absolute_url              # https://example.com/flaskstore/flaskstore/<id>/<name>

Files are saved in an sa_depot storage (the one ``STORE_DEPOT_NAME`` names, made from
Flask-Store's keys unless ``STORE_DEPOT_STORAGES`` configures it), and the extension's route
under ``STORE_URL_PREFIX`` serves every configured storage through the file server all
sa_depot's fronts share (:class:`~sa_depot.serving.server.FileServer`: Range, conditional
requests, safe disposition, policies, signed URLs). Files an existing Flask-Store site saved as
plain files under ``STORE_PATH`` keep being served at their old URLs
(``<prefix>/<relative path>``), by the same server.

``flask_store.stores.s3.S3GeventStore`` (and ``flask_store.providers.s3.S3GeventProvider``)
keep their meaning, an upload that finishes after the response, without gevent: see
:class:`~sa_depot.io.outbox.Outbox`. docs/flask.md has the whole story.

Configuration (Flask-Store's keys, then sa_depot's own):

==========================  =================================================================
``STORE_PROVIDER``          ``flask_store.stores.local.LocalStore`` (default), ``...s3.S3Store``,
                            ``...s3.S3GeventStore``; the ``flask_store.providers.*`` names too
``STORE_PATH``              local: the directory (required); S3: the key prefix (default ``/``)
``STORE_URL_PREFIX``        where the route answers, ``/flaskstore`` by default
``STORE_DOMAIN``            the scheme and host of ``absolute_url`` (else it is relative)
``STORE_S3_BUCKET``,        S3 (all four required for the S3 providers, as in Flask-Store);
``STORE_S3_REGION``,        ``STORE_S3_ACL`` is passed on as the objects' canned ACL
``STORE_S3_ACCESS_KEY``,
``STORE_S3_SECRET_KEY``
``STORE_S3_ENDPOINT_URL``   an S3-compatible server (MinIO, SeaweedFS...)
``STORE_DEPOT_NAME``        the storage saves go to, ``flaskstore`` by default
``STORE_DEPOT_PATH``        local: where saves go, ``<STORE_PATH>/.sa_depot`` by default
``STORE_DEPOT_STORAGES``    ``{name: {"depot.backend": ..., ...}}``: sa_depot storages to
                            configure (``DepotManager.configure``); served by the route too
``STORE_OUTBOX_PATH``       background uploads: the outbox directory, by default
                            ``<instance path>/sa_depot_outbox``
``STORE_SIGNING_SECRET``    the key of signed URLs (``store.url_for(path, expires_in=60)``)
``STORE_SERVING_POLICY``    the :class:`~sa_depot.serving.policy.ServingPolicy` of the storages
``STORE_SERVING_POLICIES``  ``{storage name: ServingPolicy}``
``STORE_CACHE_MAX_AGE``     ``max-age`` of file responses, in seconds (one week)
==========================  =================================================================
"""

from __future__ import annotations

import io
import logging
import os
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urljoin

from flask import Flask, current_app, has_request_context, request
from werkzeug.security import safe_join
from werkzeug.wrappers import Response

from sa_depot import descriptor
from sa_depot.exceptions import (
    ConfigurationError,
    FileNotFound,
    InvalidFileId,
    StorageNotFound,
    UnsupportedContent,
)
from sa_depot.io.content_types import DEFAULT_CONTENT_TYPE, type_from_filename
from sa_depot.io.interfaces import FileInfo, FileStorage, StoredFile
from sa_depot.io.local import LocalFileStorage, LocalStoredFile
from sa_depot.io.outbox import Outbox
from sa_depot.manager import DepotManager
from sa_depot.serving.responder import plain_response, with_reason_phrase
from sa_depot.serving.server import DEFAULT_CACHE_MAX_AGE, FileServer
from sa_depot.serving.urls import request_root, split_file_url_path, url_path_prefix

_log = logging.getLogger(__name__)

DEFAULT_PROVIDER = "flask_store.stores.local.LocalStore"
LOCAL_BACKEND = "sa_depot.io.local.LocalFileStorage"
DEFAULT_URL_PREFIX = "/flaskstore"
DEFAULT_DEPOT_NAME = "flaskstore"
#: Flask-Store's endpoint name: ``url_for("flask.store.file", filename=...)`` keeps working.
ENDPOINT = "flask.store.file"
#: Where the extension keeps its state in ``app.extensions`` (``"store"`` is Flask-Store's).
EXTENSION_KEYS = ("sa_depot.flask", "store")

LOCAL, S3, S3_BACKGROUND = "local", "s3", "s3 in the background"
#: Flask-Store's provider paths, both generations of them.
PROVIDERS = {
    "flask_store.stores.local.LocalStore": LOCAL,
    "flask_store.providers.local.LocalProvider": LOCAL,
    "flask_store.stores.s3.S3Store": S3,
    "flask_store.providers.s3.S3Provider": S3,
    "flask_store.stores.s3.S3GeventStore": S3_BACKGROUND,
    "flask_store.providers.s3.S3GeventProvider": S3_BACKGROUND,
}
_S3_KEYS = ("STORE_S3_BUCKET", "STORE_S3_REGION", "STORE_S3_ACCESS_KEY", "STORE_S3_SECRET_KEY")
REQUIRED_CONFIGURATION = {LOCAL: ("STORE_PATH",), S3: _S3_KEYS, S3_BACKGROUND: _S3_KEYS}


class NotConfiguredError(ConfigurationError):
    """A setting the configured provider needs is missing (Flask-Store's error name); the
    message names the key."""


class Store:
    """Flask-Store's extension object: ``Store(app)``, or ``Store()`` then
    :meth:`init_app` in an application factory.

    Raises :class:`NotConfiguredError` at :meth:`init_app` when a required setting is
    missing, and :class:`~sa_depot.exceptions.ConfigurationError` for a wrong one, naming the
    key either way.
    """

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Configure the storage, register the file route under ``STORE_URL_PREFIX`` and
        make :class:`~sa_depot.manager.DepotManager` link to it (``UploadedFile.url``)."""
        state = StoreState(app)
        for key in EXTENSION_KEYS:
            app.extensions[key] = state
        app.add_url_rule(
            f"{state.server.mountpoint}/<path:filename>",
            endpoint=ENDPOINT,
            view_func=state.serve,
            methods=["GET", "HEAD"],
        )
        DepotManager.set_middleware(state)

    @property
    def Provider(self) -> type[Provider]:
        """Flask-Store's provider class: ``store.Provider().save(file)``."""
        return Provider

    @property
    def state(self) -> StoreState:
        """The current application's :class:`StoreState`."""
        return current_state()

    def url_for(
        self, path: str, expires_in: float | None = None, filename: str | None = None
    ) -> str:
        """The URL of ``'storage/file_id'`` under the route (signed with ``expires_in``)."""
        return current_state().url_for(path, expires_in=expires_in, filename=filename)


def current_state() -> StoreState:
    """The :class:`StoreState` of ``current_app``; raises ``RuntimeError`` outside an
    application context and :class:`~sa_depot.exceptions.ConfigurationError` when the
    application has no Store."""
    state = current_app.extensions.get(EXTENSION_KEYS[0])
    if not isinstance(state, StoreState):
        raise ConfigurationError(
            f"the application {current_app.name!r} has no Store: call Store(app) or "
            "store.init_app(app) first"
        )
    return state


class StoreState:
    """What :meth:`Store.init_app` sets up for one application: its storage, its outbox for
    background uploads, its file server and the directory of Flask-Store's plain files."""

    def __init__(self, app: Flask) -> None:
        config = app.config
        config.setdefault("STORE_PROVIDER", DEFAULT_PROVIDER)
        config.setdefault("STORE_DOMAIN", None)
        config.setdefault("STORE_URL_PREFIX", DEFAULT_URL_PREFIX)
        config.setdefault("STORE_DEPOT_NAME", DEFAULT_DEPOT_NAME)
        config.setdefault("STORE_CACHE_MAX_AGE", DEFAULT_CACHE_MAX_AGE)
        self.app = app
        provider = str(config["STORE_PROVIDER"])
        if provider not in PROVIDERS:
            raise ConfigurationError(
                f"STORE_PROVIDER {provider!r} is not a Flask-Store provider sa_depot knows: use "
                f"one of {', '.join(sorted(PROVIDERS))} (sa_depot's own storages are set with "
                "STORE_DEPOT_STORAGES)"
            )
        self.kind = PROVIDERS[provider]
        if self.kind != LOCAL:
            config.setdefault("STORE_PATH", "/")
        self.storage_name = str(config["STORE_DEPOT_NAME"])
        own = dict(config.get("STORE_DEPOT_STORAGES") or {})
        if self.storage_name not in own:
            for key in REQUIRED_CONFIGURATION[self.kind]:
                if not config.get(key):
                    raise NotConfiguredError(
                        f"{key} must be configured in the Flask application's configuration "
                        f"for STORE_PROVIDER {provider!r}"
                    )
        for name, options in own.items():
            _configure_once(name, options, "STORE_DEPOT_STORAGES")
        if self.storage_name not in own:
            _configure_once(self.storage_name, self._storage_options(), "STORE_DEPOT_NAME")
        #: Flask-Store's plain files (local provider): served at their old URLs.
        self.legacy_root: str | None = None
        if self.kind == LOCAL and config.get("STORE_PATH"):
            self.legacy_root = os.path.realpath(str(config["STORE_PATH"]))
        self.outbox: Outbox | None = None
        if self.kind == S3_BACKGROUND:
            directory = config.get("STORE_OUTBOX_PATH") or os.path.join(
                app.instance_path, "sa_depot_outbox"
            )
            self.outbox = Outbox(LocalFileStorage(str(directory)), self.storage)
        self.server = FileServer(
            url_path_prefix(str(config["STORE_URL_PREFIX"]), "STORE_URL_PREFIX") or "/",
            int(config["STORE_CACHE_MAX_AGE"]),
            root_path=url_path_prefix(
                str(config.get("APPLICATION_ROOT") or ""), "APPLICATION_ROOT"
            ),
            secret=config.get("STORE_SIGNING_SECRET"),
            policy=config.get("STORE_SERVING_POLICY"),
            policies=config.get("STORE_SERVING_POLICIES"),
        )

    def _storage_options(self) -> dict[str, Any]:
        config = self.app.config
        if self.kind == LOCAL:
            path = config.get("STORE_DEPOT_PATH") or os.path.join(
                str(config["STORE_PATH"]), ".sa_depot"
            )
            return {
                "depot.backend": "sa_depot.io.local.LocalFileStorage",
                "depot.storage_path": path,
            }
        prefix = str(config["STORE_PATH"]).strip("/")
        options: dict[str, Any] = {
            "depot.backend": "sa_depot.io.boto3.S3Storage",
            "depot.bucket": config["STORE_S3_BUCKET"],
            "depot.prefix": f"{prefix}/" if prefix else "",
            "depot.region_name": config["STORE_S3_REGION"],
            "depot.access_key_id": config["STORE_S3_ACCESS_KEY"],
            "depot.secret_access_key": config["STORE_S3_SECRET_KEY"],
            # the route redirects to presigned URLs carrying the download's headers
            "depot.public_url": "presigned",
        }
        if config.get("STORE_S3_ENDPOINT_URL"):
            options["depot.endpoint_url"] = config["STORE_S3_ENDPOINT_URL"]
        if config.get("STORE_S3_ACL"):
            options["depot.policy"] = config["STORE_S3_ACL"]
        return options

    @property
    def storage(self) -> FileStorage:
        """The storage saves go to."""
        return DepotManager.get(self.storage_name)

    # -- saving ----------------------------------------------------------------------------------
    def save(self, content: Any) -> FileInfo:
        """Store ``content`` (a Werkzeug ``FileStorage``, bytes, a file...) in the storage, or
        in the outbox for a background upload; return what was stored."""
        if self.outbox is not None:
            return self.outbox.store(content)
        return self.storage.store(content)

    def open(self, file_id: str) -> StoredFile:
        """A saved file, from the outbox while its background upload is pending."""
        if self.outbox is not None:
            return self.outbox.open(file_id)
        return self.storage.get(file_id)

    # -- URLs ------------------------------------------------------------------------------------
    def url_for(
        self, path: str, expires_in: float | None = None, filename: str | None = None
    ) -> str:
        """The URL of ``'storage/file_id'`` under the route: the current request's root
        (``SCRIPT_NAME``), else ``APPLICATION_ROOT``; signed with ``expires_in``."""
        root = request.script_root if has_request_context() else ""
        with request_root(root):
            return self.server.url_for(path, expires_in=expires_in, filename=filename)

    def legacy_url(self, relative_path: str) -> str:
        """The URL Flask-Store gave a plain file at ``relative_path`` under ``STORE_PATH``."""
        root = request.script_root if has_request_context() else self.server.urls.root_path
        return quote(f"{root.rstrip('/')}{self.server.mountpoint}/{relative_path}", safe="/")

    def absolute(self, url: str) -> str:
        """``url`` on ``STORE_DOMAIN`` when it is configured."""
        domain = self.app.config.get("STORE_DOMAIN")
        return urljoin(str(domain), url) if domain else url

    # -- serving ---------------------------------------------------------------------------------
    def serve(self, filename: str) -> Response:
        """The route's view: a stored file; a background upload still in the outbox (read
        there first: the target may be unreachable meanwhile); a plain file; else 404."""
        pending = self._pending(filename)
        if pending is not None:
            response = self._serve_unsigned(pending)
        else:
            response = self.server.respond(
                request, filename, not_found=lambda: self._plain_or_404(filename)
            )
        return with_reason_phrase(response)

    def _plain_or_404(self, filename: str) -> Response:
        stored = self._plain_file(filename)
        if stored is None:
            return plain_response(404, "Not Found")
        return self._serve_unsigned(stored)

    def _serve_unsigned(self, stored: StoredFile) -> Response:
        """``stored`` (a pending upload or a plain file) under the store's policy. Neither has
        signed URLs: a store served through signed URLs only keeps them hidden (an
        authorization hook decides as for any file)."""
        policy = self.server.policy_for(self.storage_name)
        if policy.require_signature:
            stored.close()
            return plain_response(404, "Not Found")
        return self.server.serve(request, stored, policy)

    def _pending(self, filename: str) -> StoredFile | None:
        """The outbox's copy of ``<storage>/<id>[/<name>]``, while its upload is pending."""
        parsed = split_file_url_path(filename)
        if self.outbox is None or parsed is None or parsed[0] != self.storage_name:
            return None
        for file_id in parsed[1]:
            try:
                return self.outbox.outbox.get(file_id)
            except (InvalidFileId, FileNotFound):
                continue
        return None

    def _plain_file(self, relative_path: str) -> StoredFile | None:
        """A file Flask-Store saved under ``STORE_PATH``, opened, if ``relative_path`` names
        one: never a hidden file or directory (sa_depot's own storage lives in ``.sa_depot``),
        nothing outside ``STORE_PATH`` (``..``, symbolic links leading out)."""
        root = self.legacy_root
        if root is None or any(
            not part or part.startswith(".") for part in relative_path.split("/")
        ):
            return None
        joined = safe_join(root, relative_path)
        if joined is None:
            return None
        real = os.path.realpath(joined)
        if os.path.commonpath([root, real]) != root or not os.path.isfile(real):
            return None
        storage = DepotManager.get(self.storage_name)
        own_root = getattr(storage, "root", None)
        if isinstance(own_root, str) and os.path.commonpath([own_root, real]) == own_root:
            return None
        try:
            fileobj = io.FileIO(real, "r")
        except OSError:
            return None
        status = os.fstat(fileobj.fileno())
        name = os.path.basename(real)
        info = FileInfo(
            file_id=relative_path,
            filename=name,
            content_type=type_from_filename(name) or DEFAULT_CONTENT_TYPE,
            last_modified=datetime.fromtimestamp(int(status.st_mtime), timezone.utc),
            content_length=status.st_size,
        )
        return LocalStoredFile(info, fileobj, real)

    def close(self) -> None:
        """Stop the background uploads' worker (what is not sent stays in the outbox)."""
        if self.outbox is not None:
            self.outbox.close()


class Provider:
    """One file of the store: Flask-Store's provider object.

    ``Provider()`` (or ``Provider(upload)``) then :meth:`save` stores an upload;
    ``Provider('flaskstore/<id>')`` stands for a file saved before, and
    ``Provider('photo.jpg', location='avatars')`` for a plain file an older Flask-Store saved
    under ``STORE_PATH``. Either way :attr:`relative_path` (what to keep in a database),
    :attr:`absolute_path`, :attr:`relative_url` and :attr:`absolute_url` describe it. Needs an
    application context (it reads ``current_app``'s Store).
    """

    def __init__(self, fp: Any = None, location: str | None = None) -> None:
        self.state = current_state()
        self.fp = fp
        self.location = location.strip("/") if location else None
        #: ``'storage/file_id'`` once saved (or when given one), else ``None``.
        self.path: str | None = None
        #: A plain file's path relative to ``STORE_PATH``, for Flask-Store's files.
        self.legacy_path: str | None = None
        self.filename: str | None = getattr(fp, "filename", None) or None
        if isinstance(fp, str):
            self.filename = None
            self._locate(fp)

    def _locate(self, name: str) -> None:
        try:
            storage_name, file_id = descriptor.split_path(name)
            DepotManager.get(storage_name).fileid(file_id)
        except (InvalidFileId, StorageNotFound):
            parts = [self.location, name.strip("/")] if self.location else [name.strip("/")]
            self.legacy_path = "/".join(parts)
            self.filename = os.path.basename(self.legacy_path)
        else:
            self.path = f"{storage_name}/{file_id}"

    def save(self, fp: Any = None) -> Provider:
        """Store ``fp`` (or the upload given to the constructor): a Werkzeug ``FileStorage``
        (``request.files['afile']``), bytes, a binary file. Returns this provider, now
        describing the stored file. Raises
        :class:`~sa_depot.exceptions.UnsupportedContent` when there is nothing to save."""
        content = fp if fp is not None else self.fp
        if content is None or isinstance(content, str):
            raise UnsupportedContent(
                "Provider.save() needs the upload to store: save(request.files['afile'])"
            )
        info = self.state.save(content)
        self.path = f"{self.state.storage_name}/{info.file_id}"
        self.legacy_path = None
        self.filename = info.filename
        return self

    def _require(self) -> tuple[str | None, str | None]:
        if self.path is None and self.legacy_path is None:
            raise FileNotFound("flaskstore", "(unsaved)", "call save() first")
        return self.path, self.legacy_path

    @property
    def relative_path(self) -> str:
        """``'storage/file_id'`` (for an older plain file: its path under ``STORE_PATH``):
        what to keep in a database; ``Provider(relative_path)`` finds the file again."""
        path, legacy = self._require()
        return str(path or legacy)

    @property
    def absolute_path(self) -> str | None:
        """Where the content is: a path on the local disk, or the S3 object key; ``None``
        for storages that have neither."""
        path, legacy = self._require()
        if legacy is not None:
            assert self.state.legacy_root is not None
            return os.path.join(self.state.legacy_root, legacy)
        assert path is not None
        storage_name, file_id = descriptor.split_path(path)
        storage = DepotManager.get(storage_name)
        key = getattr(storage, "key", None)
        if callable(key):  # S3: the object key (its final one, for a pending background upload)
            return str(key(file_id))
        opened = self.state.open(file_id) if storage_name == self.state.storage_name else None
        with opened or storage.get(file_id) as stored:
            return stored.local_path

    @property
    def relative_url(self) -> str:
        """The URL under the route, without the domain:
        ``<prefix>/<storage>/<file_id>/<filename>`` (an older plain file keeps its URL)."""
        path, legacy = self._require()
        if legacy is not None:
            return self.state.legacy_url(legacy)
        assert path is not None
        return self.state.url_for(path, filename=self.filename)

    @property
    def absolute_url(self) -> str:
        """:attr:`relative_url` on ``STORE_DOMAIN`` (relative when it is not configured)."""
        return self.state.absolute(self.relative_url)

    def open(self) -> StoredFile:
        """The stored file, open for reading (close it)."""
        path, legacy = self._require()
        if legacy is not None:
            stored = self.state._plain_file(legacy)
            if stored is None:
                raise FileNotFound("STORE_PATH", legacy)
            return stored
        assert path is not None
        storage_name, file_id = descriptor.split_path(path)
        if storage_name == self.state.storage_name:
            return self.state.open(file_id)
        return DepotManager.get(storage_name).get(file_id)

    def exists(self) -> bool:
        """Whether the file is stored (or waits in the outbox)."""
        try:
            self.open().close()
        except (FileNotFound, InvalidFileId):
            return False
        return True

    def __repr__(self) -> str:
        return f"<Provider {self.path or self.legacy_path or '(unsaved)'}>"


def _configure_once(name: str, options: dict[str, Any], key: str) -> None:
    """Configure storage ``name`` unless one already is (another application of this
    process, made by the same factory): then it must be the same storage."""
    if name not in DepotManager.names():
        DepotManager.configure(name, options)
        return
    existing = DepotManager.get(name)
    wanted = DepotManager.from_config(options, create=False)
    if _location(existing) != _location(wanted):
        raise ConfigurationError(
            f"{key}: a storage named {name!r} is configured already, as {existing!r}, and this "
            f"application asks for {wanted!r}: give each storage a name of its own"
        )


def _location(storage: FileStorage) -> tuple[str, ...]:
    """What tells two storages apart: their class and where they keep files."""
    return (
        type(storage).__name__,
        str(getattr(storage, "root", "")),
        str(getattr(storage, "bucket", "")),
        str(getattr(storage, "prefix", "")),
        str(getattr(storage, "endpoint_url", "")),
    )


__all__ = [
    "DEFAULT_PROVIDER",
    "DEFAULT_URL_PREFIX",
    "ENDPOINT",
    "PROVIDERS",
    "NotConfiguredError",
    "Provider",
    "Store",
    "StoreState",
    "current_state",
]
