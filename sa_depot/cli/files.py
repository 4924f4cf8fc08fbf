"""``sa-depot ls`` and ``sa-depot stat``: look into the configured storages."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import click

from sa_depot.cli.base import CliState, human_size, pass_state
from sa_depot.exceptions import ConfigurationError, FileNotFound
from sa_depot.io.interfaces import FileInfo, FileStorage
from sa_depot.manager import DepotManager


@click.command("ls")
@click.argument("storage", required=False)
@click.option("-l", "--long", "long_format", is_flag=True, help="Show size, date, type, name.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file (or storage).")
@pass_state
def ls_command(state: CliState, storage: str | None, long_format: bool, as_json: bool) -> None:
    """List the files of STORAGE (their ids, sorted), or the configured storages.

    \b
    sa-depot ls              the storages: name, backend, default, aliases
    sa-depot ls media        the ids of the files in "media"
    sa-depot ls -l media     ... with size, last modification, content type and filename
    """
    state.configure_storages()
    if storage is None:
        _list_storages(state.settings.aliases, as_json)
        return
    depot = DepotManager.get(storage)
    for file_id in sorted(depot.iter_ids()):
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
    for attribute in ("storage_path", "bucket"):
        value = getattr(storage, attribute, None)
        if isinstance(value, str):
            return f"{backend} {value}"
    return backend


@click.command("stat")
@click.argument("path", metavar="STORAGE/FILE_ID")
@click.option("--json", "as_json", is_flag=True, help="Print the metadata as a JSON object.")
@click.option(
    "--verify",
    is_flag=True,
    help="Read the whole content and check it against the stored checksum (exit 1 if not).",
)
@pass_state
def stat_command(state: CliState, path: str, as_json: bool, verify: bool) -> None:
    """Show the metadata of one stored file, e.g. ``sa-depot stat default/1b4e28ba-...``."""
    state.configure_storages()
    storage_name, file_id = DepotManager.split_path(path)
    with DepotManager.get(storage_name).get(file_id) as stored:
        data = _info_dict(storage_name, stored.info)
        data["public_url"] = stored.public_url
        data["local_path"] = stored.local_path
        if verify:
            data["verified"] = _verify(stored.info, stored.chunks())
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
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
                value = "content matches the checksum"
            click.echo(f"{label + ':':<15}{'-' if value is None else value}")
        for key, value in sorted(data.get("extra", {}).items()):
            click.echo(f"{key + ':':<15}{value}")


def _verify(info: FileInfo, chunks: Any) -> bool:
    if info.checksum is None:
        raise ConfigurationError(
            f"{info.file_id} has no stored checksum (it was written by filedepot): "
            "there is nothing to verify against"
        )
    digest = hashlib.sha256()
    length = 0
    for chunk in chunks:
        digest.update(chunk)
        length += len(chunk)
    if digest.hexdigest() != info.checksum or (
        info.content_length is not None and length != info.content_length
    ):
        raise click.ClickException(
            f"{info.file_id} is corrupt: its content ({length} bytes, sha256 "
            f"{digest.hexdigest()}) does not match the stored checksum {info.checksum} "
            f"({info.content_length} bytes)"
        )
    return True


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


__all__ = ["ls_command", "stat_command"]
