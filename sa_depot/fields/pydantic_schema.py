"""How Pydantic (v2) validates and serialises :class:`~sa_depot.fields.upload.UploadedFile`.

:meth:`UploadedFile.__get_pydantic_core_schema__
<sa_depot.fields.upload.UploadedFile.__get_pydantic_core_schema__>` imports this module, and
this module imports ``pydantic_core``, only when Pydantic asks: sa_depot does not depend on
Pydantic.

* **Serialised** (``model_dump``, ``model_dump_json``, a FastAPI response), an UploadedFile is
  what a client may see, :func:`public_view`: ``url`` (a fresh one, see
  :attr:`UploadedFile.url <sa_depot.fields.upload.UploadedFile.url>`), ``filename``,
  ``content_type``, ``content_length`` and ``checksum``. None of the descriptor's internal
  keys (storage name, file id, path, derivatives) leaves the application.
* **Validated**, a field accepts an UploadedFile (a row's attribute, the result of
  :func:`sa_depot.aio.store`) and nothing else: a dict or JSON naming a stored file is refused,
  since accepting it would let a client attach any stored file to its row. Clients send
  content (a form's file, FastAPI's ``UploadFile``), which the application stores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pydantic_core import PydanticCustomError, core_schema

if TYPE_CHECKING:
    from pydantic import GetJsonSchemaHandler
    from pydantic.json_schema import JsonSchemaValue


_T = TypeVar("_T")


class PublicFile(Protocol):
    """What :func:`public_view` reads of an UploadedFile (this module does not import that
    class: the class imports this module)."""

    @property
    def url(self) -> str: ...
    @property
    def filename(self) -> str | None: ...
    @property
    def content_type(self) -> str: ...
    @property
    def content_length(self) -> int | None: ...
    @property
    def checksum(self) -> str | None: ...


#: The keys of :func:`public_view`, in order.
PUBLIC_KEYS = ("url", "filename", "content_type", "content_length", "checksum")


def public_view(uploaded: PublicFile) -> dict[str, Any]:
    """What a client may see of ``uploaded``: ``{"url", "filename", "content_type",
    "content_length", "checksum"}`` (length in bytes, checksum the hex SHA-256; both ``None``
    for files filedepot stored). Raises
    :class:`~sa_depot.exceptions.ConfigurationError` when no URL can be made (no middleware
    and no public URL): a response must not silently lose its link."""
    return {
        "url": uploaded.url,
        "filename": uploaded.filename,
        "content_type": uploaded.content_type,
        "content_length": uploaded.content_length,
        "checksum": uploaded.checksum,
    }


def core_schema_for(cls: type[Any]) -> core_schema.CoreSchema:
    """The Pydantic core schema of ``cls`` (an UploadedFile class): instances only, serialised
    as :func:`public_view`."""
    serialized = core_schema.typed_dict_schema(
        {
            "url": core_schema.typed_dict_field(core_schema.str_schema()),
            "filename": core_schema.typed_dict_field(
                core_schema.nullable_schema(core_schema.str_schema())
            ),
            "content_type": core_schema.typed_dict_field(core_schema.str_schema()),
            "content_length": core_schema.typed_dict_field(
                core_schema.nullable_schema(core_schema.int_schema())
            ),
            "checksum": core_schema.typed_dict_field(
                core_schema.nullable_schema(core_schema.str_schema())
            ),
        }
    )
    return core_schema.json_or_python_schema(
        json_schema=core_schema.no_info_plain_validator_function(_refuse_json),
        python_schema=core_schema.no_info_plain_validator_function(_instance_of(cls)),
        serialization=core_schema.plain_serializer_function_ser_schema(
            public_view, return_schema=serialized
        ),
    )


def json_schema_for(
    schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
) -> JsonSchemaValue:
    """The JSON Schema of a field (OpenAPI): the object :func:`public_view` makes."""
    return {
        "type": "object",
        "title": "UploadedFile",
        "description": "A stored file, as a client sees it: a fresh URL and its metadata.",
        "properties": {
            "url": {"type": "string", "format": "uri-reference", "title": "Url"},
            "filename": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Filename"},
            "content_type": {"type": "string", "title": "Content Type"},
            "content_length": {
                "anyOf": [{"type": "integer"}, {"type": "null"}],
                "title": "Content Length",
                "description": "bytes",
            },
            "checksum": {
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "title": "Checksum",
                "description": "hex SHA-256 of the content",
            },
        },
        "required": list(PUBLIC_KEYS),
    }


def _instance_of(cls: type[_T]) -> Callable[[Any], _T]:
    def validate(value: Any) -> _T:
        if isinstance(value, cls):
            return value
        raise PydanticCustomError(
            "uploaded_file_type",
            "expected {expected}, not {given}: store content with the column (assign it to "
            "the model's attribute, or use sa_depot.aio.store) and pass the UploadedFile it "
            "makes; a descriptor given as a dict is refused",
            {"expected": cls.__name__, "given": type(value).__name__},
        )

    return validate


def _refuse_json(value: Any) -> Any:
    raise PydanticCustomError(
        "uploaded_file_from_json",
        "an UploadedFile cannot be read from JSON: a client uploads content (a form's file, "
        "an UploadFile) for the application to store; it cannot name a stored file",
    )


__all__ = ["PUBLIC_KEYS", "core_schema_for", "json_schema_for", "public_view"]
