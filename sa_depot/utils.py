"""Small helpers that filedepot applications import from ``depot.utils``.

* :func:`make_content_disposition` builds the ``Content-Disposition`` header the middleware
  sends, with a transliterated ASCII fallback name (``'Крупный.txt'`` -> ``"Krupnyy.txt"``);
* :func:`utcnow_naive` and :func:`utcfromtimestamp_naive` give naive UTC datetimes, as
  filedepot's timestamps were. sa_depot's own timestamps are timezone-aware (see
  docs/migrating.md); these exist for code that compares with filedepot-era values.
"""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow_naive() -> datetime:
    """The current UTC time as a naive datetime (``tzinfo`` is ``None``)."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def utcfromtimestamp_naive(ts: float) -> datetime:
    """The POSIX timestamp ``ts`` (seconds) as a naive UTC datetime.

    Raises ``OverflowError`` or ``OSError`` for a timestamp out of the platform's range, as
    :meth:`datetime.fromtimestamp` does.
    """
    return datetime.fromtimestamp(ts, timezone.utc).replace(tzinfo=None)


def make_content_disposition(disposition: str, fname: str | None) -> str:
    """A ``Content-Disposition`` value (RFC 6266) for ``disposition`` (``'inline'`` or
    ``'attachment'``) and the file name ``fname``, e.g.
    ``attachment; filename="Krupnyy.txt"; filename*=UTF-8''%D0%9A...``.

    The same function builds the header of every file the middleware serves (see
    :func:`sa_depot.serving.representation.make_content_disposition` for the rules). Unlike
    filedepot's, the value is always well-formed: quotes, backslashes, slashes and control
    characters never reach it, and ``fname=None`` gives the disposition alone. Raises
    ``ValueError`` for a disposition that is not an HTTP token. Needs Werkzeug
    (``pip install 'sa-depot[web]'``).
    """
    # imported here: Werkzeug is optional, and the dates above must not need it
    from sa_depot.serving.representation import make_content_disposition as build

    return build(disposition, fname)


__all__ = ["make_content_disposition", "utcfromtimestamp_naive", "utcnow_naive"]
