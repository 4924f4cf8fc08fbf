"""Flask: the browser uploads large files straight to S3 in presigned parts, with a progress
bar, then submits the form with the upload's token; the row attaches the uploaded object.

    S3_ENDPOINT_URL=http://127.0.0.1:8333 S3_BUCKET=uploads S3_ACCESS_KEY_ID=... \
    S3_SECRET_ACCESS_KEY=... UPLOAD_SECRET=<a long random secret> \
        waitress-serve --port 8000 examples.direct_uploads:app

The bucket needs a CORS rule letting the page's origin PUT and read the ``ETag`` header.
"""

import os
from html import escape
from typing import Any

import sqlalchemy as sa
from flask import Flask, jsonify, redirect, request
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from werkzeug.wrappers import Response

from sa_depot.direct import DirectUploads
from sa_depot.direct.companion import CompanionEndpoints
from sa_depot.exceptions import UploadRefused, ValidationFailed
from sa_depot.fields.sqlalchemy import UploadedFileField
from sa_depot.fields.upload import UploadedFile
from sa_depot.io.validation import MaxSize
from sa_depot.manager import DepotManager

app = Flask(__name__)
DepotManager.configure(
    "default",
    {
        "depot.backend": "sa_depot.io.boto3.S3Storage",
        "depot.bucket": os.environ["S3_BUCKET"],
        "depot.prefix": os.environ.get("S3_PREFIX", ""),
        "depot.endpoint_url": os.environ["S3_ENDPOINT_URL"],
        "depot.access_key_id": os.environ["S3_ACCESS_KEY_ID"],
        "depot.secret_access_key": os.environ["S3_SECRET_ACCESS_KEY"],
        "depot.region_name": os.environ.get("S3_REGION", "us-east-1"),
    },
)
uploads = DirectUploads.configure(os.environ["UPLOAD_SECRET"])  # signs the upload tokens
engine = sa.create_engine(os.environ.get("DATABASE_URL", "sqlite:///direct_example.sqlite"))


class Base(DeclarativeBase):
    pass


class Video(Base):
    __tablename__ = "direct_videos"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    content: Mapped[UploadedFile] = mapped_column(UploadedFileField(validators=[MaxSize(2**30)]))


Base.metadata.create_all(engine)
endpoints = CompanionEndpoints(uploads, Video.content)  # Uppy's AwsS3 routes, for Video.content

PAGE = """<!doctype html><meta charset="utf-8"><title>Videos</title>
<form method="post" id="form">
  <input name="title" placeholder="Title" required>
  <input type="file" id="file" required>
  <progress id="progress" max="100" value="0"></progress> <span id="status"></span>
  <input type="hidden" name="token" id="token">
  <button id="submit" disabled>Save</button>
</form>
<ul id="videos">{items}</ul>
<script>
const PART = 5 * 1024 * 1024;  // S3's smallest part (the last one may be smaller)
async function call(method, path, body) {{
  const response = await fetch("/uploads/" + path, {{
    method, headers: {{"Content-Type": "application/json"}},
    body: body === undefined ? undefined : JSON.stringify(body)}});
  if (!response.ok) throw new Error((await response.json()).message);
  return response.json();
}}
function putPart(url, blob, onProgress) {{  // XMLHttpRequest: fetch reports no upload progress
  return new Promise((resolve, reject) => {{
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => xhr.status < 300 ? resolve(xhr.getResponseHeader("ETag"))
                                        : reject(new Error("part refused: " + xhr.status));
    xhr.onerror = () => reject(new Error("network error"));
    xhr.send(blob);
  }});
}}
async function upload(file) {{
  const {{uploadId, key}} = await call("POST", "s3/multipart", {{filename: file.name,
    type: file.type || "application/octet-stream", size: file.size}});
  const query = "?key=" + encodeURIComponent(key), id = encodeURIComponent(uploadId);
  const parts = [];
  let done = 0;
  for (let start = 0, number = 1; start < file.size; start += PART, number++) {{
    const blob = file.slice(start, start + PART);
    const {{url}} = await call("GET", `s3/multipart/${{id}}/${{number}}${{query}}`);
    const etag = await putPart(url, blob, (loaded) => {{
      document.getElementById("progress").value = 100 * (done + loaded) / file.size;
    }});
    done += blob.size;
    parts.push({{PartNumber: number, ETag: etag}});
  }}
  const {{token}} = await call("POST", `s3/multipart/${{id}}/complete${{query}}`, {{parts}});
  return token;
}}
document.getElementById("file").addEventListener("change", async (event) => {{
  const status = document.getElementById("status");
  status.textContent = "uploading";
  try {{
    document.getElementById("token").value = await upload(event.target.files[0]);
    document.getElementById("progress").value = 100;
    document.getElementById("file").disabled = true;  // the token carries the file now
    document.getElementById("submit").disabled = false;
    status.textContent = "uploaded";
  }} catch (error) {{
    status.textContent = "failed: " + error.message;
  }}
}});
</script>"""


@app.get("/")
def index() -> str:
    with Session(engine) as session:
        items = "".join(
            f"<li>{escape(video.title)}: {escape(video.content.filename or '')}</li>"
            for video in session.scalars(sa.select(Video).order_by(Video.id))
        )
    return PAGE.format(items=items)


@app.route("/uploads/<path:path>", methods=["GET", "POST", "DELETE"])
def upload_endpoints(path: str) -> tuple[Response, int]:
    # a real application checks here that the user may upload
    status, answer = endpoints.handle(
        request.method, path, request.args, request.get_json(silent=True)
    )
    return jsonify(answer), status


@app.post("/")
def save() -> Any:
    try:
        with Session(engine) as session, session.begin():  # verified at the flush
            content = uploads.attachment(request.form["token"])  # refused if forged or expired
            session.add(Video(title=request.form["title"], content=content))
    except (UploadRefused, ValidationFailed) as exc:
        return f"<p>The upload was refused: {escape(str(exc))}</p>", 400
    return redirect("/", 303)
