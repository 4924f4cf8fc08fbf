"""A column naming its files by a key template (``UploadedFileField(key=...)``): files get
readable ids (``acme/2026/11/<uuid>.pdf``) that go through the whole lifecycle as UUID ids do:
commit, rollback, replace, delete, the collector."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sa_depot.collector import collect
from sa_depot.exceptions import InvalidKey
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.io.utils import FileIntent
from tests.orm.conftest import Depot, unique

KEY = "{tenant}/{yyyy}/{mm}/{id}{ext}"


@pytest.fixture
def Invoice(engine: sa.Engine, depot: Depot) -> Iterator[Any]:
    class Base(DeclarativeBase):
        pass

    class Invoice(Base):
        __tablename__ = unique("invoices")
        id: Mapped[int] = mapped_column(primary_key=True)
        pdf: Mapped[UploadedFile | None] = mapped_column(UploadedFileField(key=KEY))

    Base.metadata.create_all(engine)
    yield Invoice
    Base.metadata.drop_all(engine)
    Base.registry.dispose()


def test_a_keyed_column_names_files_by_its_template(
    engine: sa.Engine, Invoice: Any, depot: Depot
) -> None:
    now = datetime.now(timezone.utc)
    with Session(engine) as session:
        invoice = Invoice(
            pdf=UploadedFile.of(b"%PDF-1.4 one", "Invoice 7.PDF", key_values={"tenant": "acme"})
        )
        session.add(invoice)
        session.commit()
        assert invoice.pdf is not None
        tenant, year, month, name = invoice.pdf.file_id.split("/")
        assert (tenant, year, month) == ("acme", f"{now:%Y}", f"{now:%m}")
        assert name.endswith(".pdf") and uuid.UUID(name.removesuffix(".pdf"))
        assert invoice.pdf.path == f"default/{invoice.pdf.file_id}"
        assert invoice.pdf.depot_name == "default"
        assert invoice.pdf.filename == "Invoice 7.PDF"
        assert depot.read(invoice.pdf) == b"%PDF-1.4 one"
        first = invoice.pdf.path
        # a FileIntent carries the values too; the old file goes with the commit
        invoice.pdf = FileIntent(b"%PDF-1.4 two", "two.pdf", None, key_values={"tenant": "globex"})
        session.commit()
        assert invoice.pdf.file_id.startswith("globex/")
        assert depot.stored() == {invoice.pdf.path} and first not in depot.stored()
        session.delete(invoice)
        session.commit()
    assert depot.stored() == set()


def test_a_rolled_back_keyed_upload_is_removed(
    engine: sa.Engine, Invoice: Any, depot: Depot
) -> None:
    with Session(engine) as session:
        session.add(Invoice(pdf=UploadedFile.of(b"gone", key_values={"tenant": "acme"})))
        session.flush()
        assert len(depot.stored()) == 1
        session.rollback()
    assert depot.stored() == set()


def test_a_missing_value_raises_invalid_key_and_stores_nothing(
    engine: sa.Engine, Invoice: Any, depot: Depot
) -> None:
    with pytest.raises(InvalidKey, match="tenant"):
        Invoice(pdf=b"no tenant")
    assert depot.stored() == set()


def test_a_malformed_template_is_refused_when_the_column_is_declared() -> None:
    for template in ("../{id}", "/{tenant}/{id}", "{tenant!r}/{id}", "a//{id}"):
        with pytest.raises(InvalidKey, match="key template"):
            UploadedFileField(key=template)


def test_the_collector_sweeps_keyed_orphans_and_keeps_referenced_keys(
    engine: sa.Engine, Invoice: Any, depot: Depot
) -> None:
    with Session(engine) as session:
        invoice = Invoice(pdf=UploadedFile.of(b"kept", key_values={"tenant": "acme"}))
        session.add(invoice)
        session.commit()
        kept = invoice.pdf.path
    orphan = depot.storage.create(b"orphan", "o.txt", key=KEY, key_values={"tenant": "acme"})
    assert depot.stored() == {kept, f"default/{orphan}"}
    report = collect(engine, Invoice.metadata, now=datetime.now(timezone.utc) + timedelta(days=2))
    assert report.orphans == [f"default/{orphan}"]
    assert depot.stored() == {kept}


def test_a_row_given_another_rows_keyed_file_stores_a_copy_keyed_alike(
    engine: sa.Engine, Invoice: Any, depot: Depot
) -> None:
    with Session(engine) as session:
        first = Invoice(pdf=UploadedFile.of(b"shared", "a.pdf", key_values={"tenant": "acme"}))
        plain = Invoice(pdf=None)
        session.add_all([first, plain])
        session.commit()
        assert first.pdf is not None
        second = Invoice(pdf=first.pdf)  # no value for {tenant} comes with it
        session.add(second)
        session.commit()
        assert second.pdf is not None and second.pdf.file_id != first.pdf.file_id
        head, _, name = second.pdf.file_id.rpartition("/")
        assert head == first.pdf.file_id.rpartition("/")[0] and name.endswith(".pdf")
        assert depot.read(second.pdf) == b"shared"
        # a file named by a plain UUID (stored before the column had a key) copies to a UUID
        old = UploadedFile(b"older", "default")
        plain.pdf = old
        session.commit()
        third = Invoice(pdf=plain.pdf)
        session.add(third)
        session.commit()
        assert third.pdf is not None and uuid.UUID(third.pdf.file_id)
        assert depot.read(third.pdf) == b"older"
