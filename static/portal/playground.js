// The deployment page's playground: one image through the endpoint's predict API, its boxes drawn
// on a canvas and listed in a table. The form names its API path in data-predict-path.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("playground");
  if (!form) return;
  const input = document.getElementById("playground-image");
  const zone = document.getElementById("playground-dropzone");
  const canvas = document.getElementById("playground-canvas");
  const table = document.querySelector("#predictions tbody");
  const summary = document.getElementById("playground-summary");
  const problem = document.getElementById("playground-error");
  const button = document.getElementById("predict-button");

  for (const swatch of form.querySelectorAll(".swatch[data-class-id]")) {
    swatch.style.background = Portal.colour(Number(swatch.dataset.classId));
  }

  // Dropping a file puts it in the file input, so the keyboard path and the mouse path are one.
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    if (event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      input.dispatchEvent(new Event("change"));
    }
  });
  input.addEventListener("change", () => {
    const file = input.files[0];
    summary.textContent = file ? `${file.name} chosen; press Predict.` : "Choose an image and press Predict.";
  });

  function showError(message) {
    problem.textContent = message;
    problem.hidden = false;
    summary.textContent = "";
    delete canvas.dataset.boxes;
    table.replaceChildren();
  }

  function readable(error) {
    if (error.status === 503) return `The endpoint is not serving right now (stopped or still starting): ${error.message} Start it, wait until it is active, and try again.`;
    if (error.status === 413) return `The image is too large: ${error.message}`;
    if (error.status === 400) return `The image was refused: ${error.message}`;
    if (error.status === 404) return "This endpoint does not exist any more.";
    return error.message;
  }

  function loadImage(url) {
    return new Promise((resolve, reject) => {
      const image = new Image();
      image.onload = () => resolve(image);
      image.onerror = () => reject(new Error("The browser cannot display this file as an image."));
      image.src = url;
    });
  }

  // A small image is enlarged (whole pixels, no smoothing) before the boxes are drawn, so their
  // labels stay legible; the table keeps the model's own coordinates.
  async function enlarged(image, predictions) {
    const factor = Math.floor(400 / Math.max(image.naturalWidth, image.naturalHeight, 1));
    if (factor < 2) return { image, predictions };
    const scratch = document.createElement("canvas");
    scratch.width = image.naturalWidth * factor;
    scratch.height = image.naturalHeight * factor;
    const context = scratch.getContext("2d");
    context.imageSmoothingEnabled = false;
    context.drawImage(image, 0, 0, scratch.width, scratch.height);
    const scaled = predictions.map((p) => ({ ...p, bbox: Array.isArray(p.bbox) ? p.bbox.map((v) => v * factor) : p.bbox }));
    return { image: await loadImage(scratch.toDataURL()), predictions: scaled };
  }

  function listPredictions(predictions) {
    table.replaceChildren();
    for (const p of predictions) {
      const row = document.createElement("tr");
      const box = (p.bbox || []).map((v) => Math.round(v)).join(", ");
      row.innerHTML = `<td><span class="swatch" style="background: ${Portal.colour(p.class_id)}"></span>${Portal.escape(p.class_name ?? p.class_id)}</td>
        <td>${(p.confidence ?? 0).toFixed(3)}</td><td>${Portal.escape(box)}</td>`;
      table.append(row);
    }
    if (!predictions.length) {
      const row = document.createElement("tr");
      row.innerHTML = '<td colspan="3">No box above the thresholds.</td>';
      table.append(row);
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.hidden = true;
    const file = input.files[0];
    if (!file) {
      showError("Choose an image first.");
      input.focus();
      return;
    }
    const body = new FormData();
    body.append("image", file);
    for (const name of ["conf", "iou", "max_det"]) {
      const value = form.elements[name].value.trim();
      if (value !== "") body.append(name, value);
    }
    for (const box of form.querySelectorAll("input[name=classes]:checked")) body.append("classes", box.value);
    Portal.busy(button, true);
    summary.textContent = "Predicting…";
    try {
      const result = await Portal.api(form.dataset.predictPath, { method: "POST", form: body });
      const predictions = result.predictions || [];
      const url = URL.createObjectURL(file);
      try {
        const shown = await enlarged(await loadImage(url), predictions);
        Portal.drawBoxes(canvas, shown.image, shown.predictions);
      } finally {
        URL.revokeObjectURL(url);
      }
      canvas.dataset.boxes = String(predictions.length);
      listPredictions(predictions);
      const time = typeof result.inference_time_ms === "number" ? ` in ${result.inference_time_ms.toFixed(1)} ms` : "";
      summary.textContent = `${predictions.length} box${predictions.length === 1 ? "" : "es"}${time} (deployment ${result.deployment}).`;
      document.dispatchEvent(new CustomEvent("playground:predicted", { detail: result }));
    } catch (error) {
      showError(error.status ? readable(error) : error.message);
      document.dispatchEvent(new CustomEvent("playground:predicted", { detail: null }));
    } finally {
      Portal.busy(button, false);
    }
  });
});
