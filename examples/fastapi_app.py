"""FastAPI and AsyncSession: upload, list, download (with Range) and delete files of rows.

DATABASE_URL=postgresql+asyncpg://localhost/app uvicorn examples.fastapi_app:app
"""

import os
from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from html import escape

import sqlalchemy as sa
from fastapi import FastAPI, UploadFile
from fastapi.responses import HTMLResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sa_depot import aio, asgi
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.manager import DepotManager

DepotManager.configure("files", {"depot.storage_path": os.environ.get("FILES_PATH", "files")})
engine = create_async_engine(os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///example.db"))
Session = async_sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


class Document(Base):
    __tablename__ = "fastapi_documents"
    id: Mapped[int] = mapped_column(primary_key=True)
    content: Mapped[UploadedFile] = mapped_column(UploadedFileField())


class DocumentOut(BaseModel):
    id: int
    content: UploadedFile  # {url, filename, content_type, content_length, checksum}


async def create_tables(app: FastAPI) -> AsyncGenerator[None]:
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    yield


app = FastAPI(lifespan=asynccontextmanager(create_tables))
app.mount("/files", asgi.make_app(root_path="/files"))  # downloads: Range, never on the loop


@app.get("/documents", response_model=list[DocumentOut])
async def documents() -> Sequence[Document]:
    async with Session() as session:
        return (await session.scalars(sa.select(Document).order_by(Document.id))).all()


@app.post("/documents", response_model=DocumentOut, status_code=201)
async def upload(file: UploadFile) -> Document:
    content = await aio.store(file, field=Document.content)  # in a worker thread
    async with Session() as session, session.begin():  # kept on commit, removed on rollback
        session.add(document := Document(content=content))
    return document


@app.delete("/documents/{document_id}", status_code=204)
async def delete(document_id: int) -> None:
    async with Session() as session, session.begin():  # its file goes after the commit
        await session.delete(await session.get_one(Document, document_id))


@app.get("/", response_class=HTMLResponse)
async def page() -> str:
    links = "".join(
        f'<li><a href="{d.content.url}">{escape(d.content.filename or "")}</a>'
        for d in await documents()
    )
    return (
        "<form onsubmit=\"event.preventDefault(); fetch('/documents', {method: 'POST', "
        "body: new FormData(this)}).then(() => location.reload())\"><input type='file' "
        f"name='file' required> <button>Upload</button></form><ul id='documents'>{links}</ul>"
    )
