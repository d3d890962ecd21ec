// Helpers shared by the dashboard's pages: API calls, uploads with progress, the live feed
// (WebSocket with reconnect and resync from the server's snapshot), time formatting, boxes.
"use strict";

const Portal = (() => {
  function csrf() {
    const cookie = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="));
    if (cookie) return decodeURIComponent(cookie.split("=")[1]);
    const field = document.querySelector("input[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  // The API's one error shape: {"error": {"code", "message", "fields"}}.
  function errorMessage(body, status) {
    const error = body && body.error;
    if (!error) return `The server answered ${status}.`;
    const fields = Object.entries(error.fields || {})
      .map(([name, problems]) => `${name}: ${[].concat(problems).join(" ")}`)
      .join("; ");
    return fields && !error.message.includes(fields) ? `${error.message} (${fields})` : error.message;
  }

  async function api(url, { method = "GET", json, form } = {}) {
    const headers = { Accept: "application/json" };
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (form !== undefined) {
      body = form;
    }
    if (method !== "GET") headers["X-CSRFToken"] = csrf();
    const response = await fetch(url, { method, headers, body, credentials: "same-origin" });
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const error = new Error(errorMessage(data, response.status));
      error.status = response.status;
      error.body = data;
      throw error;
    }
    return data;
  }

  // A multipart upload whose progress the page can show (fetch cannot report upload progress).
  function upload(url, formData, onProgress) {
    return new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      request.open("POST", url);
      request.setRequestHeader("X-CSRFToken", csrf());
      request.setRequestHeader("Accept", "application/json");
      request.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable && onProgress) onProgress(event.loaded, event.total);
      });
      request.addEventListener("load", () => {
        let data = null;
        try {
          data = JSON.parse(request.responseText);
        } catch (_) {
          data = null;
        }
        if (request.status >= 200 && request.status < 300) resolve(data);
        else {
          const error = new Error(errorMessage(data, request.status));
          error.status = request.status;
          error.body = data;
          reject(error);
        }
      });
      request.addEventListener("error", () => reject(new Error("The upload failed: the connection was lost.")));
      request.send(formData);
    });
  }

  // A button while its request runs: not clickable again, and announced as busy.
  function busy(button, on) {
    button.disabled = on;
    if (on) button.setAttribute("aria-busy", "true");
    else button.removeAttribute("aria-busy");
  }

  function toast(message) {
    const box = document.getElementById("toast");
    if (!box) return;
    box.textContent = message;
    box.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => (box.hidden = true), 8000);
  }

  // One WebSocket feed: the server sends a snapshot on connect, then events. On a drop we
  // reconnect with backoff; the new connection's snapshot resyncs whatever was missed. The page
  // also asks for a snapshot every `resyncEvery` ms: an event broadcast from another process is
  // lost on the embedded in-memory channel layer (and any broadcast can be lost), the database is not.
  function live(path, { onSnapshot, onEvent, onState, resyncEvery = 4000 } = {}) {
    let socket = null;
    let delay = 1000;
    let closed = false;
    let timer = null;
    const indicator = document.querySelector("[data-live-state]");
    function state(name, text) {
      if (indicator) {
        indicator.dataset.liveState = name;
        indicator.textContent = text;
      }
      if (onState) onState(name);
    }
    function connect() {
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      socket = new WebSocket(`${scheme}://${location.host}${path}`);
      socket.addEventListener("open", () => {
        delay = 1000;
        state("live", "live");
      });
      socket.addEventListener("message", (message) => {
        const data = JSON.parse(message.data);
        if (data.type === "snapshot") onSnapshot && onSnapshot(data);
        else onEvent && onEvent(data);
      });
      socket.addEventListener("close", (event) => {
        if (closed) return;
        if (event.code === 4401 || event.code === 4404 || event.code === 4403) {
          state("closed", "not available");
          return;
        }
        state("reconnecting", `reconnecting in ${Math.round(delay / 1000)} s`);
        timer = setTimeout(connect, delay);
        delay = Math.min(delay * 2, 15000);
      });
    }
    // A tab that slept may have missed events even though its socket looks open.
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && socket && socket.readyState === WebSocket.OPEN) {
        socket.send(JSON.stringify({ type: "resync" }));
      }
    });
    state("connecting", "connecting");
    connect();
    const resyncTimer = resyncEvery
      ? setInterval(() => {
          if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "resync" }));
        }, resyncEvery)
      : null;
    return {
      close() {
        closed = true;
        clearTimeout(timer);
        clearInterval(resyncTimer);
        if (socket) socket.close();
        state("closed", "finished");
      },
      resync() {
        if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "resync" }));
      },
    };
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
    seconds = Math.max(0, Math.round(seconds));
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = seconds % 60;
    if (h) return `${h} h ${m} min`;
    if (m) return `${m} min ${s} s`;
    return `${s} s`;
  }

  function ago(iso) {
    if (!iso) return "never";
    return `${duration((Date.now() - Date.parse(iso)) / 1000)} ago`;
  }

  const PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324", "#800000", "#000075"];
  function colour(index) {
    return PALETTE[Math.abs(index || 0) % PALETTE.length];
  }

  // Draw predictions ({class_id, class_name, confidence, bbox: [x1, y1, x2, y2]} in pixels) over an image.
  function drawBoxes(canvas, image, predictions) {
    canvas.width = image.naturalWidth;
    canvas.height = image.naturalHeight;
    const context = canvas.getContext("2d");
    context.drawImage(image, 0, 0);
    const scale = Math.max(1, canvas.width / 400);
    context.lineWidth = 2 * scale;
    context.font = `${12 * scale}px system-ui, sans-serif`;
    for (const p of predictions || []) {
      if (!Array.isArray(p.bbox) || p.bbox.length !== 4) continue;
      const [x1, y1, x2, y2] = p.bbox;
      const label = `${p.class_name ?? p.class_id} ${(p.confidence ?? 0).toFixed(2)}`;
      context.strokeStyle = context.fillStyle = colour(p.class_id);
      context.strokeRect(x1, y1, x2 - x1, y2 - y1);
      const width = context.measureText(label).width + 6 * scale;
      const top = Math.max(0, y1 - 16 * scale);
      context.fillRect(x1, top, width, 16 * scale);
      context.fillStyle = "#fff";
      context.fillText(label, x1 + 3 * scale, top + 12 * scale);
    }
  }

  function escape(text) {
    const span = document.createElement("span");
    span.textContent = text ?? "";
    return span.innerHTML;
  }

  return { api, upload, busy, toast, live, duration, ago, colour, drawBoxes, escape, csrf };
})();
window.Portal = Portal;
