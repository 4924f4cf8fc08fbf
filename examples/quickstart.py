"""A short tour of sa_depot's storage API, following filedepot's "Getting started".

Run it with ``python examples/quickstart.py``: it stores, reads, replaces and deletes files in
a temporary folder and prints what it did.
"""

from __future__ import annotations

import tempfile

from sa_depot.io.utils import FileIntent
from sa_depot.manager import DepotManager


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="sa_depot_demo_") as folder:
        # The first storage configured becomes the default one.
        DepotManager.configure("default", {"depot.storage_path": folder})
        depot = DepotManager.get()
        print(f"configured storage 'default' on {folder}")

        file_id = depot.create(b"Hello World", filename="hello.txt")
        stored = depot.get(file_id)
        print(
            f"created {file_id}: {stored.filename!r}, {stored.content_type}, "
            f"{stored.content_length} bytes, sha256 {(stored.checksum or '')[:12]}..."
        )
        print(f"  content: {stored.read()!r}")
        stored.close()

        depot.replace(file_id, b"Hello again")
        with DepotManager.get_file(f"default/{file_id}") as replaced:
            print(f"replaced {file_id} (same id): {replaced.read()!r}")

        intent = FileIntent(b'{"a": 1}', "data.json", "application/json")
        json_id = depot.create(intent)
        with depot.get(json_id) as stored_json:
            print(
                f"created {json_id} from a FileIntent: {stored_json.filename!r}, "
                f"{stored_json.content_type}"
            )

        print(f"the storage holds {len(depot.list())} files")
        depot.delete(file_id)
        depot.delete(json_id)
        print(f"deleted both; exists? {depot.exists(file_id)}, {depot.exists(json_id)}")
        DepotManager.reset()


if __name__ == "__main__":
    main()
