"""How one storage's files are served: :class:`ServingPolicy`.

A middleware has a default policy and may give any storage a policy of its own. Policies are
immutable and checked when they are made, so a contradictory combination (a storage behind an
authorization hook whose responses shared caches may keep) fails at start-up, not in production.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Literal

from werkzeug.datastructures import ResponseCacheControl
from werkzeug.wrappers import Request

from sa_depot.exceptions import ConfigurationError
from sa_depot.io.interfaces import StoredFile
from sa_depot.serving.representation import DEFAULT_INLINE_TYPES

#: ``authorize(request, stored_file)``: return ``True`` to serve the file, ``False`` (or raise
#: :class:`PermissionError`) to deny it. A Werkzeug ``HTTPException`` raised by the hook is sent
#: as it is (a 401 with ``WWW-Authenticate``, for example).
AuthorizationHook = Callable[[Request, StoredFile], bool]

CacheMode = Literal["public", "private", "no-store"]
PublicUrlMode = Literal["redirect", "proxy"]


@dataclass(frozen=True)
class ServingPolicy:
    """How the files of one storage are served.

    :param cache: ``Cache-Control`` of file responses. ``"private"`` (the default) lets the
        browser keep the file but no shared cache (proxy, CDN); ``"public"`` lets shared caches
        keep it too; ``"no-store"`` forbids keeping it at all.
    :param max_age: ``max-age`` in seconds; ``None`` takes the middleware's ``cache_max_age``.
    :param authorize: a hook deciding, per request, whether a file may be served (see
        :data:`AuthorizationHook`). A request carrying a valid signature is served without
        asking the hook: the application authorised it when it signed the URL.
    :param deny_status: the status of a denied request: ``403``, or ``404`` to hide whether
        the file exists.
    :param require_signature: serve only signed URLs (see ``DepotMiddleware.url_for``).
    :param signed_url_expires_in: the lifetime of the URLs ``url_for`` signs for this storage
        when the caller does not give ``expires_in``.
    :param public_urls: what to do with a file whose storage gives it a ``public_url`` (a
        public or presigned object URL): ``"redirect"`` answers a temporary redirect to it,
        ``"proxy"`` streams the bytes through the middleware instead.
    :param redirect_status: ``307`` (default) or ``302``; never a permanent 301, which browsers
        would remember after the presigned URL expired.
    :param redirect_max_age: with ``cache="public"``, how long shared caches may keep a
        redirect; ``0`` (default) sends ``Cache-Control: no-store`` on redirects, which is
        always the case for other cache modes.
    :param x_accel_redirect: hand local files to nginx: maps a directory of the local disk
        (a storage's ``storage_path``) to the ``internal`` nginx location that serves it, e.g.
        ``{"/var/files": "/_depot_files"}``.
    :param x_sendfile: hand local files to Apache's mod_xsendfile or lighttpd by their path.
    :param inline_types: media types shown inline; every other type is an attachment.
    """

    cache: CacheMode = "private"
    max_age: int | None = None
    authorize: AuthorizationHook | None = None
    deny_status: Literal[403, 404] = 403
    require_signature: bool = False
    signed_url_expires_in: float | None = None
    public_urls: PublicUrlMode = "redirect"
    redirect_status: Literal[302, 307] = 307
    redirect_max_age: int = 0
    x_accel_redirect: Mapping[str, str] | None = None
    x_sendfile: bool = False
    inline_types: frozenset[str] = field(default=DEFAULT_INLINE_TYPES)

    def __post_init__(self) -> None:
        if self.cache not in ("public", "private", "no-store"):
            raise ConfigurationError(f"cache={self.cache!r}: use 'public', 'private' or 'no-store'")
        if self.cache == "public" and self.is_restricted:
            raise ConfigurationError(
                "cache='public' with authorize or require_signature would let shared caches "
                "serve restricted files to anyone: use cache='private' or 'no-store'"
            )
        for name in ("max_age", "redirect_max_age"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ConfigurationError(f"{name}={value!r}: use a number of seconds >= 0")
        if self.deny_status not in (403, 404):
            raise ConfigurationError(f"deny_status={self.deny_status!r}: use 403 or 404")
        if self.public_urls not in ("redirect", "proxy"):
            raise ConfigurationError(f"public_urls={self.public_urls!r}: use 'redirect' or 'proxy'")
        if self.redirect_status not in (302, 307):
            raise ConfigurationError(
                f"redirect_status={self.redirect_status!r}: use 307 or 302 (a permanent 301 "
                "would outlive presigned URLs)"
            )
        if self.signed_url_expires_in is not None and not self.signed_url_expires_in > 0:
            raise ConfigurationError(
                f"signed_url_expires_in={self.signed_url_expires_in!r}: use a number of seconds > 0"
            )
        if self.x_sendfile and self.x_accel_redirect:
            raise ConfigurationError("choose either x_accel_redirect or x_sendfile, not both")
        if self.x_accel_redirect is not None:
            for directory, location in self.x_accel_redirect.items():
                if not directory.startswith("/") or not location.startswith("/"):
                    raise ConfigurationError(
                        f"x_accel_redirect {directory!r} -> {location!r}: map an absolute "
                        "directory to an absolute nginx location such as '/_depot_files'"
                    )
            object.__setattr__(
                self, "x_accel_redirect", MappingProxyType(dict(self.x_accel_redirect))
            )
        # a set or list given by the caller becomes immutable like the rest of the policy
        object.__setattr__(self, "inline_types", frozenset(self.inline_types))

    def cache_control(self, default_max_age: int, signed_until: int | None = None) -> str:
        """The ``Cache-Control`` value of a file response under this policy.

        :param default_max_age: seconds, when the policy's ``max_age`` is ``None``.
        :param signed_until: the POSIX time a signed URL expires: a cached copy must not
            outlive the link, so ``max-age`` stops there.
        """
        max_age = default_max_age if self.max_age is None else self.max_age
        if signed_until is not None:
            max_age = max(0, min(max_age, signed_until - int(time.time())))
        return _cache_control_header(self.cache, max_age)

    @property
    def is_restricted(self) -> bool:
        """Whether access is controlled (a hook or signatures)."""
        return self.authorize is not None or self.require_signature


@lru_cache(maxsize=256)
def _cache_control_header(cache: str, max_age: int) -> str:
    """The ``Cache-Control`` value for a policy's ``cache`` setting and ``max_age`` (seconds):
    the same few values on every request of a storage, built once each."""
    header = ResponseCacheControl()
    if cache == "no-store":
        header.no_store = True
        return header.to_header()
    if cache == "public":
        header.public = True
    else:
        header.private = True
    header.max_age = max_age
    return header.to_header()
