"""The HTTP endpoints Uppy's AwsS3 plugin calls (the routes of Uppy's Companion server), for
one mapped file field, independent of the web framework.

Mount :meth:`CompanionEndpoints.handle` under a prefix (``/uploads/``) and give Uppy
``endpoint: '/uploads'``; the plugin then calls:

==========  ==========================================  ======================================
method      path (under the prefix)                     answer (JSON)
==========  ==========================================  ======================================
``GET``     ``s3/params?filename=&type=``               ``{method, url, fields, headers,
                                                        token}``: a presigned POST
``POST``    ``s3/multipart`` ``{filename, type}``       ``{uploadId, key}`` (``key`` is the
                                                        token)
``GET``     ``s3/multipart/<uploadId>/<n>?key=``        ``{url, expires}``: part ``n``'s URL
``GET``     ``s3/multipart/<uploadId>/batch?key=``      ``{presignedUrls: {n: url}}`` (the
            ``&partNumbers=1,2``                        plugin's versions before 3.0)
``GET``     ``s3/multipart/<uploadId>?key=``            ``[{PartNumber, Size, ETag}]``
``POST``    ``s3/multipart/<uploadId>/complete?key=``   ``{token, location}``
            ``{parts: [{PartNumber, ETag}]}``
``DELETE``  ``s3/multipart/<uploadId>?key=``            ``{}``
==========  ==========================================  ======================================

A refused call answers 403 (:class:`~sa_depot.exceptions.UploadRefused`) or 400
(:class:`~sa_depot.exceptions.ValidationFailed`, malformed requests) with ``{error, message}``.
Authenticate the user before calling :meth:`~CompanionEndpoints.handle`, as for any upload.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from sqlalchemy.orm import InstrumentedAttribute

from sa_depot.direct.slots import DirectUploads
from sa_depot.exceptions import UploadRefused, ValidationFailed


class CompanionEndpoints:
    """Uppy's AwsS3 endpoints for uploads to ``attribute`` (``Document.content``).

    :param uploads: the :class:`~sa_depot.direct.DirectUploads` signing the tokens.
    :param attribute: the mapped file attribute the uploads are for.
    """

    def __init__(self, uploads: DirectUploads, attribute: InstrumentedAttribute[Any]) -> None:
        self.uploads = uploads
        self.attribute = attribute

    def handle(
        self, method: str, path: str, query: Mapping[str, str], body: Any = None
    ) -> tuple[int, Any]:
        """Answer one call: ``(status, JSON value)``.

        :param method: the HTTP method.
        :param path: the path under the prefix (``'s3/multipart/<id>/3'``).
        :param query: the query parameters (``key``, ``filename``, ``type``).
        :param body: the request's JSON body (``None`` without one).
        """
        try:
            return 200, self._dispatch(method.upper(), path.strip("/").split("/"), query, body)
        except UploadRefused as exc:
            return 403, {"error": exc.reason, "message": str(exc)}
        except ValidationFailed as exc:
            return 400, {"error": "invalid", "message": str(exc)}
        except (KeyError, TypeError, ValueError) as exc:
            return 400, {"error": "malformed", "message": f"malformed request: {exc}"}

    def _dispatch(self, method: str, parts: list[str], query: Mapping[str, str], body: Any) -> Any:
        uploads = self.uploads
        body = body if isinstance(body, Mapping) else {}
        if parts == ["s3", "params"] and method == "GET":
            size = query.get("size")
            slot = uploads.presigned_post(
                self.attribute,
                filename=query.get("filename"),
                content_type=query.get("type"),
                size=int(size) if size else None,
            )
            return {**slot.as_dict(), "headers": {}}
        if parts == ["s3", "multipart"] and method == "POST":
            size = body.get("size")
            slot = uploads.create_multipart(
                self.attribute,
                filename=body.get("filename"),
                content_type=body.get("type"),
                size=int(size) if size is not None else None,
            )
            return {"uploadId": slot.upload_id, "key": slot.token}
        if len(parts) >= 3 and parts[:2] == ["s3", "multipart"]:
            upload_id, rest = unquote(parts[2]), parts[3:]
            token = query["key"]
            if not rest and method == "GET":
                return uploads.list_parts(token, upload_id)
            if not rest and method == "DELETE":
                uploads.abort_multipart(token, upload_id)
                return {}
            if rest == ["complete"] and method == "POST":
                return uploads.complete_multipart(token, upload_id, body["parts"])
            if len(rest) == 1 and rest[0].isdigit() and method == "GET":
                return uploads.sign_part(token, upload_id, int(rest[0]))
            if rest == ["batch"] and method == "GET":  # older plugins sign parts in batches
                numbers = [int(n) for n in query["partNumbers"].split(",") if n]
                signed = {str(n): uploads.sign_part(token, upload_id, n)["url"] for n in numbers}
                return {"presignedUrls": signed}
        raise KeyError(f"no endpoint {method} {'/'.join(parts)}")


__all__ = ["CompanionEndpoints"]
