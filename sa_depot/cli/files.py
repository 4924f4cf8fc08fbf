"""``sa-depot ls`` and ``sa-depot stat``: look into the configured storages."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import click

from sa_depot.cli.base import CliState, ReportedError, human_size, pass_state
from sa_depot.cli.config import DEFAULT_MOUNTPOINT
from sa_depot.exceptions import ConfigurationError, DepotError, FileNotFound, InvalidFileId
from sa_depot.io.interfaces import FileInfo, FileStorage, StoredFile
from sa_depot.manager import DepotManager
from sa_depot.serving.urls import split_file_url_path


@click.command("ls", short_help="List the configured storages, or the files of one.")
@click.argument("storage", required=False)
@click.option("-l", "--long", "long_format", is_flag=True, help="Show size, date, type, name.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON Lines: one JSON object per file (or storage).",
)
@pass_state
def ls_command(state: CliState, storage: str | None, long_format: bool, as_json: bool) -> None:
    """List the files of STORAGE (their ids, sorted), or the configured storages.

    \b
    sa-depot ls              the storages: name, backend, default, aliases
    sa-depot ls media        the ids of the files in "media"
    sa-depot ls -l media     ... with size, last modification, content type and filename

    It only reads: a storage whose directory or bucket does not exist is an error, and is
    not created. An empty storage is reported on standard error.
    """
    state.configure_storages()
    if storage is None:
        _list_storages(state.settings.aliases, as_json)
        return
    depot = DepotManager.get(storage)
    listed = 0
    for file_id in sorted(depot.iter_ids()):
        listed += 1
        if not (long_format or as_json):
            click.echo(file_id)
            continue
        try:
            info = depot.info(file_id)
        except FileNotFound:  # removed while we were listing
            continue
        if as_json:
            click.echo(json.dumps(_info_dict(storage, info)))
        else:
            modified = info.last_modified.strftime("%Y-%m-%d %H:%M:%S")
            click.echo(
                f"{file_id}  {human_size(info.content_length):>10}  {modified}  "
                f"{info.content_type:<24}  {info.filename or ''}"
            )
    if not listed:
        click.echo(f"storage {storage!r} holds no files", err=True)


def _list_storages(configured_aliases: dict[str, str], as_json: bool) -> None:
    default = DepotManager.get_default()
    aliases: dict[str, list[str]] = {}
    for alias, target in configured_aliases.items():
        aliases.setdefault(target, []).append(alias)
    for name in DepotManager.names():
        storage = DepotManager.get(name)
        backend = f"{type(storage).__module__}.{type(storage).__qualname__}"
        if as_json:
            entry = {
                "name": name,
                "backend": backend,
                "default": name == default,
                "aliases": sorted(aliases.get(name, [])),
                "location": _location(storage),
            }
            click.echo(json.dumps(entry))
            continue
        notes = []
        if name == default:
            notes.append("default")
        if aliases.get(name):
            notes.append("aliases: " + ", ".join(sorted(aliases[name])))
        suffix = f"  ({'; '.join(notes)})" if notes else ""
        click.echo(f"{name}  {_describe(storage)}{suffix}")


def _describe(storage: FileStorage) -> str:
    backend = type(storage).__name__
    location = _location(storage)
    return f"{backend} {location}" if location else backend


def _location(storage: FileStorage) -> str | None:
    """Where the files are: a local storage's directory, an S3 bucket."""
    for attribute in ("storage_path", "bucket"):
        value = getattr(storage, attribute, None)
        if isinstance(value, str):
            return value
    return None


@click.command("stat", short_help="Show the metadata of one stored file.")
@click.argument("path", metavar="STORAGE/FILE_ID")
@click.option("--json", "as_json", is_flag=True, help="Print the metadata as a JSON object.")
@click.option(
    "--verify",
    is_flag=True,
    help="Read the whole content and check it against the stored checksum (exit status 1 "
    "if it does not match).",
)
@pass_state
def stat_command(state: CliState, path: str, as_json: bool, verify: bool) -> None:
    """Show the metadata of one stored file.

    \b
    sa-depot stat default/1b4e28ba-2fa1-41d2-883f-0016d3cca427
    sa-depot stat /depot/default/1b4e28ba-2fa1-41d2-883f-0016d3cca427/report.pdf
    sa-depot stat --verify --json default/1b4e28ba-2fa1-41d2-883f-0016d3cca427

    The file is named by STORAGE/FILE_ID, or by the URL (or URL path) the middleware
    serves it at. With --verify, a content that does not match its checksum is reported
    ("verified": false and "error" in JSON) and the exit status is 1.
    """
    state.configure_storages()
    mountpoint = state.settings.serve.get("mountpoint", DEFAULT_MOUNTPOINT)
    names = [*DepotManager.names(), *state.settings.aliases]
    storage_name, file_id = DepotManager.split_path(
        storage_path(path, mountpoint, names, exists=_exists)
    )
    problem: str | None = None
    with DepotManager.get(storage_name).get(file_id) as stored:
        data = _info_dict(storage_name, stored.info)
        data["public_url"] = stored.public_url
        data["local_path"] = stored.local_path
        if verify:
            problem = _verify(stored)
            data["verified"] = problem is None
            if problem is not None:
                data["error"] = problem
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        _print_info(data)
    if problem is not None:
        raise ReportedError(problem)


def _print_info(data: dict[str, Any]) -> None:
    labels = {
        "path": "path",
        "filename": "filename",
        "content_type": "content type",
        "content_length": "size",
        "checksum": "sha256",
        "last_modified": "last modified",
        "public_url": "public url",
        "local_path": "local path",
        "verified": "verified",
    }
    for key, label in labels.items():
        if key not in data:
            continue
        value = data[key]
        if key == "content_length" and value is not None:
            value = f"{value} bytes ({human_size(value)})"
        if key == "verified":
            value = "content matches the checksum" if value else "NO (see the error below)"
        click.echo(f"{label + ':':<15}{'-' if value is None else value}")
    for key, value in sorted(data.get("extra", {}).items()):
        click.echo(f"{key + ':':<15}{value}")


def storage_path(
    argument: str,
    mountpoint: str,
    storages: list[str],
    exists: Callable[[str], bool] | None = None,
) -> str:
    """``'storage/file_id'`` from what a user may paste: that itself, or the URL or URL path
    the middleware serves the file at (``<mountpoint>/<storage>/<file_id>[/<filename>]``,
    a query string such as a signature ignored). ``storages``: the configured names and
    aliases. A file id may hold ``/`` (a readable key): of the ids such a URL may name
    (:func:`~sa_depot.serving.urls.split_file_url_path`), the first for which ``exists``
    says yes, else the first.

    Raises :class:`~sa_depot.exceptions.ConfigurationError` for a URL path that names no
    configured storage.
    """
    if not argument.startswith("/") and "://" not in argument:
        return argument
    segments = [unquote(part) for part in urlsplit(argument).path.split("/") if part]
    prefix = [part for part in mountpoint.split("/") if part]
    rest = segments[len(prefix) :] if segments[: len(prefix)] == prefix else []
    parsed = split_file_url_path("/".join(rest)) if rest and rest[0] in storages else None
    if parsed is not None:
        storage, candidates = parsed
        paths = [f"{storage}/{candidate}" for candidate in candidates]
        return next((path for path in paths if exists is None or exists(path)), paths[0])
    # served under another mountpoint: <...>/<storage>/<file_id>[/<filename>]
    found = [
        f"{segments[i]}/{segments[i + 1]}"
        for i in range(len(segments) - 1)
        if segments[i] in storages and len(segments) - i in (2, 3)
    ]
    if len(found) == 1:
        return found[0]
    raise ConfigurationError(
        f"{argument!r} is not STORAGE/FILE_ID, nor a file URL of a configured storage "
        f"({mountpoint}/<storage>/<file_id>); give the file as e.g. 'default/<file id>'. "
        f"Configured storages: {', '.join(storages) or 'none'}"
    )


def _exists(path: str) -> bool:
    """Whether ``'storage/file_id'`` names a stored file (``False`` for a malformed id)."""
    storage_name, file_id = DepotManager.split_path(path)
    try:
        return DepotManager.get(storage_name).exists(file_id)
    except InvalidFileId:
        return False


def _verify(stored: StoredFile) -> str | None:
    """``None`` if the content matches the stored checksum and length, else why not."""
    info = stored.info
    if info.checksum is None:
        return (
            f"{info.file_id} has no stored checksum (it was written by filedepot): there is "
            "nothing to verify against"
        )
    digest = hashlib.sha256()
    length = 0
    try:
        for chunk in stored.chunks():
            digest.update(chunk)
            length += len(chunk)
    except (DepotError, OSError) as exc:
        return f"{info.file_id} could not be read to the end: {exc}"
    if digest.hexdigest() != info.checksum or (
        info.content_length is not None and length != info.content_length
    ):
        return (
            f"{info.file_id} is corrupt: its content ({length} bytes, sha256 "
            f"{digest.hexdigest()}) does not match the stored checksum {info.checksum} "
            f"({info.content_length} bytes)"
        )
    return None


def _info_dict(storage: str, info: FileInfo) -> dict[str, Any]:
    data: dict[str, Any] = {
        "path": f"{storage}/{info.file_id}",
        "file_id": info.file_id,
        "filename": info.filename,
        "content_type": info.content_type,
        "content_length": info.content_length,
        "checksum": info.checksum,
        "last_modified": info.last_modified.isoformat(),
    }
    if info.extra:
        data["extra"] = dict(info.extra)
    return data


__all__ = ["ls_command", "stat_command", "storage_path"]
