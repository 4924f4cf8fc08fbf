"""Flask: upload, list, download and delete files attached to rows, with sa_depot.flask.

    DATABASE_URL=postgresql+psycopg://localhost/app STORE_PATH=./uploads \
        waitress-serve --port 8000 examples.flask_app:app
"""

import os
from html import escape

import sqlalchemy as sa
from flask import Flask, redirect, request
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from werkzeug.wrappers import Response

from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.flask import Store

app = Flask(__name__)
app.config["STORE_PATH"] = os.environ.get("STORE_PATH", "uploads")
Store(app)  # the storage new files go to, and /flaskstore/... serving them (Range, caching...)
engine = sa.create_engine(os.environ.get("DATABASE_URL", "sqlite:///flask_example.sqlite"))


class Base(DeclarativeBase):
    pass


class Document(Base):
    __tablename__ = "flask_documents"
    id: Mapped[int] = mapped_column(primary_key=True)
    content: Mapped[UploadedFile] = mapped_column(UploadedFileField())


Base.metadata.create_all(engine)


@app.get("/")
def index() -> str:
    with Session(engine) as session:
        items = "".join(
            f'<li><a href="{escape(doc.content.url)}">{escape(doc.content.filename or "")}</a> '
            f'<form method="post" action="/{doc.id}/delete"><button>Delete</button></form></li>'
            for doc in session.scalars(sa.select(Document).order_by(Document.id))
        )
    return (
        '<form method="post" enctype="multipart/form-data"><input type="file" name="file" '
        f'required> <button>Upload</button></form><ul id="documents">{items}</ul>'
    )


@app.post("/")
def upload() -> Response:
    with Session(engine) as session, session.begin():  # the file lives and dies with the row
        session.add(Document(content=request.files["file"]))
    return redirect("/", 303)


@app.post("/<int:document_id>/delete")
def delete(document_id: int) -> Response:
    with Session(engine) as session, session.begin():  # its file goes after the commit
        session.delete(session.get_one(Document, document_id))
    return redirect("/", 303)
