"""The demo web application of ``sa-depot demo``.

A small server-rendered site on SQLite and a local storage: drop files and images on it (a
progress bar follows the upload), see them listed with thumbnails, view images at full size,
download them, delete them (its page's stylesheet and script are in ``static/``). It shows
sa_depot's main job: files attached to rows with
:class:`~sa_depot.fields.sqlalchemy.UploadedFileField`, kept when the row is committed and
removed (thumbnails included) when its deletion is committed, served by
:class:`~sa_depot.middleware.DepotMiddleware`.

Run it with ``sa-depot demo``, or serve ``make_app(data_dir)`` with any WSGI server::

    from sa_depot.demo import make_app
    app = make_app("./.sa_depot_demo")

Importing this package declares nothing: the mapped classes are made by :func:`make_app`.
"""

from sa_depot.demo.app import DemoApp, make_app

__all__ = ["DemoApp", "make_app"]
