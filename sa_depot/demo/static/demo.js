// The sa_depot demo's page, enhanced: drag and drop onto the form, the size checked before an
// upload, a progress bar while it is sent, and images shown at full size. Without this
// script the page still works: the form posts, links open the images.
"use strict";

(function () {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const input = document.getElementById("files");
  const button = document.getElementById("upload-button");
  const selection = document.getElementById("selection");
  const progressBox = document.getElementById("progress-box");
  const progress = document.getElementById("progress");
  const progressText = document.getElementById("progress-text");
  const messages = document.getElementById("messages");
  const maxBytes = Number(form.dataset.maxBytes);
  // what a multipart form adds around each file (boundary and headers), roughly
  const PART_OVERHEAD = 512;

  function size(bytes) {
    const units = ["B", "KiB", "MiB", "GiB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return unit === 0 ? bytes + " B" : value.toFixed(1) + " " + units[unit];
  }

  function show(kind, text) {
    const line = document.createElement("p");
    line.className = kind;
    line.setAttribute("role", kind === "error" ? "alert" : "status");
    line.textContent = text; // never HTML: names come from the user's disk
    messages.replaceChildren(line);
  }

  function total(files) {
    let bytes = 0;
    for (const file of files) bytes += file.size + PART_OVERHEAD;
    return bytes;
  }

  function describe(files) {
    if (!files.length) {
      selection.hidden = true;
      return;
    }
    const names = Array.from(files, (file) => file.name).join(", ");
    selection.textContent = files.length + (files.length === 1 ? " file" : " files") +
      ", " + size(total(files)) + ": " + names;
    selection.hidden = false;
  }

  function upload(files) {
    if (!files.length) {
      show("error", "Choose at least one file to upload.");
      return;
    }
    const bytes = total(files);
    if (bytes > maxBytes) {
      show("error", "These files make " + size(bytes) + ": the demo accepts up to " +
        size(maxBytes) + " per upload. Nothing was sent.");
      return;
    }
    const data = new FormData();
    for (const file of files) data.append("files", file, file.name);
    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      const percent = Math.round((100 * event.loaded) / event.total);
      progress.value = percent;
      progressText.textContent = size(event.loaded) + " of " + size(event.total) +
        " (" + percent + "%)";
    });
    request.addEventListener("load", () => {
      let answer = null;
      try {
        answer = JSON.parse(request.responseText);
      } catch (error) {
        answer = null;
      }
      if (request.status === 200 && answer && answer.ok) {
        progressText.textContent = "Stored. Loading the list...";
        window.location.assign("/"); // the server keeps the message for that page
        return;
      }
      finish();
      show("error", (answer && answer.error) || "The upload failed (HTTP " + request.status + ").");
    });
    request.addEventListener("error", () => {
      finish();
      show("error", "The upload failed: the server could not be reached.");
    });
    progress.value = 0;
    progressText.textContent = "Starting...";
    progressBox.hidden = false;
    button.disabled = true;
    form.classList.add("uploading");
    request.send(data);
  }

  function finish() {
    button.disabled = false;
    form.classList.remove("uploading");
  }

  input.addEventListener("change", () => describe(input.files));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    upload(input.files);
  });

  // drag and drop onto the whole form
  let depth = 0; // dragenter/dragleave fire for every child element crossed
  form.addEventListener("dragenter", (event) => {
    event.preventDefault();
    depth += 1;
    form.classList.add("dragging");
  });
  form.addEventListener("dragover", (event) => {
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  form.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) form.classList.remove("dragging");
  });
  form.addEventListener("drop", (event) => {
    event.preventDefault();
    depth = 0;
    form.classList.remove("dragging");
    const files = event.dataTransfer.files;
    if (!files || !files.length) return;
    input.files = files;
    describe(files);
    upload(files);
  });

  // images at full size, in a dialog (the link opens the image where dialogs are missing)
  const viewer = document.getElementById("viewer");
  const viewerImage = document.getElementById("viewer-image");
  const caption = document.getElementById("viewer-caption");
  if (viewer && typeof viewer.showModal === "function") {
    document.addEventListener("click", (event) => {
      const link = event.target.closest("a.view");
      if (!link) return;
      event.preventDefault();
      viewerImage.src = link.href;
      viewerImage.alt = link.dataset.name || "";
      caption.textContent = link.dataset.name || "";
      viewer.showModal();
    });
    viewer.addEventListener("click", (event) => {
      if (event.target === viewer) viewer.close(); // a click on the backdrop
    });
    viewer.addEventListener("close", () => viewerImage.removeAttribute("src"));
  }
})();
