// One training job's live page: progress, ETA, heartbeat, loss and mAP charts, log tail, cancel/retry.
// The page is rendered with the epoch history and the log up to one event id; the live feed's
// snapshot (on every connect and reconnect) is followed by a fetch of every event after the
// newest one applied, so a dropped connection never leaves a gap in the charts or the log.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const state = JSON.parse(document.getElementById("training-state").textContent);
  const history = JSON.parse(document.getElementById("epoch-history").textContent);
  const jobId = state.job;
  const api = `/api/v1/training-jobs/${jobId}/`;
  const TERMINAL = ["completed", "failed", "cancelled"];
  const STATUS_LABELS = {
    queued: "Queued", running: "Running", cancelling: "Cancelling",
    completed: "Completed", failed: "Failed", cancelled: "Cancelled",
  };
  const LOG_LINES = 500;
  const $ = (id) => document.getElementById(id);

  let lastEventId = state.last_event_id;
  const seen = new Set();
  let batch = null; // {epoch, batch, batches} of the epoch under way
  let etaSeconds = state.eta_seconds;
  let etaAt = Date.now();

  // ---- charts -------------------------------------------------------------------------------
  const isLoss = (key) => /loss$/.test(key);
  const isQuality = (key) => key === "mAP50" || key === "mAP50-95" || /^metrics\/(mAP|accuracy)/.test(key);
  const LOSS_COLOURS = { box: "#4363d8", cls: "#e6194b", dfl: "#3cb44b", seg: "#f58231", loss: "#911eb4" };

  function lossStyle(key) {
    const [split, name] = key.split("/");
    const kind = (name || key).replace(/_?loss$/, "") || "loss";
    return {
      label: `${split === "val" ? "val" : "train"} ${kind} loss`,
      borderColor: LOSS_COLOURS[kind] || Portal.colour(kind.length),
      borderDash: split === "val" ? [6, 4] : [],
    };
  }

  function qualityStyle(key) {
    const colours = { mAP50: "#4363d8", "mAP50-95": "#e6194b" };
    return { label: key.replace(/^metrics\//, ""), borderColor: colours[key] || Portal.colour(key.length), borderDash: [] };
  }

  function lineChart(canvas, yTitle, bounded) {
    if (typeof Chart === "undefined") return null; // the text table stays the way to read the metrics
    return new Chart(canvas, {
      type: "line",
      data: { labels: [], datasets: [] },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        spanGaps: true,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { title: { display: true, text: "epoch" } },
          y: { title: { display: true, text: yTitle }, beginAtZero: true, ...(bounded ? { suggestedMax: 1 } : {}) },
        },
        plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
      },
    });
  }

  const charts = [
    { canvas: $("loss-chart"), chart: lineChart($("loss-chart"), "loss", false), pick: isLoss, style: lossStyle },
    { canvas: $("map-chart"), chart: lineChart($("map-chart"), "mAP", true), pick: isQuality, style: qualityStyle },
  ];

  function drawCharts() {
    const keys = new Set();
    for (const row of history) for (const key of Object.keys(row)) keys.add(key);
    for (const { canvas, chart, pick, style } of charts) {
      if (chart) {
        chart.data.labels = history.map((row) => row.epoch);
        const wanted = [...keys].filter(pick).sort((a, b) => a.localeCompare(b));
        chart.data.datasets = wanted.map((key) => ({
          ...style(key),
          key,
          data: history.map((row) => (row[key] === undefined ? null : row[key])),
          pointRadius: history.length > 40 ? 0 : 3,
          borderWidth: 2,
          fill: false,
        }));
        chart.update("none");
      }
      canvas.dataset.points = String(history.length);
    }
    drawTable();
  }

  function sum(row, prefix) {
    const values = Object.entries(row).filter(([k, v]) => k.startsWith(prefix) && isLoss(k) && typeof v === "number");
    return values.length ? values.reduce((total, [, v]) => total + v, 0) : null;
  }

  function drawTable() {
    const body = $("epoch-table").tBodies[0];
    const format = (value) => (typeof value === "number" ? value.toFixed(4) : "");
    const rows = history.slice(-10).map((row) => {
      const tr = document.createElement("tr");
      for (const value of [row.epoch, format(sum(row, "train/")), format(sum(row, "val/")), format(row.mAP50), format(row["mAP50-95"])]) {
        const td = document.createElement("td");
        td.textContent = value;
        tr.append(td);
      }
      return tr;
    });
    if (rows.length) body.replaceChildren(...rows);
  }

  function recordEpoch(payload) {
    const row = { epoch: payload.epoch, seconds: payload.epoch_seconds ?? null, ...(payload.metrics || {}) };
    const index = history.findIndex((r) => r.epoch >= row.epoch);
    if (index === -1) history.push(row);
    else if (history[index].epoch === row.epoch) history[index] = row;
    else history.splice(index, 0, row);
    drawCharts();
  }

  // ---- progress, ETA, heartbeat, attempt, status -------------------------------------------
  function setStatus(status) {
    state.status = status;
    const badge = $("job-status");
    badge.className = `status status-${status}`;
    badge.textContent = STATUS_LABELS[status] || status;
    $("cancel-button").hidden = !["queued", "running"].includes(status);
    $("retry-button").hidden = !["failed", "cancelled"].includes(status);
  }

  function drawProgress() {
    const bar = $("epoch-progress");
    bar.value = state.progress || 0;
    bar.setAttribute("aria-valuetext", `${Math.round(state.progress || 0)} %`);
    $("epoch-text").textContent = `epoch ${state.epoch} of ${state.epochs}`;
    const running = batch && batch.epoch > state.epoch && !TERMINAL.includes(state.status);
    $("batch-text").textContent = running ? `epoch ${batch.epoch}: batch ${batch.batch} of ${batch.batches}` : "";
    $("attempt").textContent = `${state.attempt} of ${state.max_attempts}`;
  }

  // The trainer's own ETA when it sent one; otherwise the mean epoch time times what is left.
  function etaText() {
    if (state.status === "completed") return "done";
    if (TERMINAL.includes(state.status)) return "–";
    if (state.status === "queued") return "waiting for a worker";
    if (typeof etaSeconds === "number") return Portal.duration(etaSeconds - (Date.now() - etaAt) / 1000);
    const durations = history.map((row) => row.seconds).filter((s) => typeof s === "number");
    if (!durations.length) return "estimating…";
    const mean = durations.reduce((a, b) => a + b, 0) / durations.length;
    const within = batch && batch.epoch > state.epoch ? batch.batch / batch.batches : 0;
    return `~${Portal.duration(mean * Math.max(0, state.epochs - state.epoch - within))}`;
  }

  function tick() {
    $("eta").textContent = etaText();
    $("heartbeat").textContent = state.last_heartbeat_at ? Portal.ago(state.last_heartbeat_at) : "none yet";
    const stale = ["running", "cancelling"].includes(state.status) && state.lease_until && Date.parse(state.lease_until) < Date.now();
    $("stale-warning").hidden = !stale;
  }

  function setEta(seconds) {
    etaSeconds = typeof seconds === "number" ? seconds : null;
    etaAt = Date.now();
  }

  // ---- log ----------------------------------------------------------------------------------
  const log = $("log-tail");
  function appendLog(lines, attempt) {
    if (!lines || !lines.length) return;
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 24;
    const kept = log.textContent.split("\n").filter((line) => line !== "");
    kept.push(...lines.map((line) => `[attempt ${attempt}] ${line}`));
    log.textContent = `${kept.slice(-LOG_LINES).join("\n")}\n`;
    if (atBottom) log.scrollTop = log.scrollHeight;
  }
  log.scrollTop = log.scrollHeight;

  // ---- the live feed ------------------------------------------------------------------------
  function finished() {
    // The server renders the outcome (model version, validation, error): swap that part in.
    if (!state.terminal) {
      state.terminal = true;
      if (feed) feed.close();
      refreshOutcome();
    }
  }

  // The outcome and attempts as the server renders them now; no reload, so the charts and log stay.
  async function refreshOutcome() {
    try {
      const response = await fetch(location.href, { credentials: "same-origin" });
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const id of ["outcome", "attempts-table"]) {
        const replacement = fresh.getElementById(id);
        if (replacement) $(id).replaceWith(document.importNode(replacement, true));
      }
      const validation = fresh.getElementById("validation-job");
      if (validation) followValidation(JSON.parse(validation.textContent));
    } catch (error) {
      Portal.toast(`Could not show the outcome: ${error.message}`);
    }
  }

  // A validation started by this training: show its result once it ends.
  let validationFeed = null;
  function followValidation(validationId) {
    if (validationFeed) return;
    const ended = () => {
      if (!validationFeed) return;
      validationFeed.close();
      validationFeed = null;
      refreshOutcome();
    };
    validationFeed = Portal.live(`/ws/jobs/${validationId}/`, {
      onSnapshot: (data) => {
        const badge = $("validation-status");
        if (badge) {
          badge.className = `status status-${data.job.status}`;
          badge.textContent = STATUS_LABELS[data.job.status] || data.job.status;
        }
        if (TERMINAL.includes(data.job.status)) ended();
      },
      onEvent: (event) => {
        if (TERMINAL.includes(event.kind)) ended();
      },
    });
  }

  function applyJob(job) {
    Object.assign(state, {
      epoch: job.epoch, epochs: job.epochs, progress: job.progress, attempt: job.attempt,
      max_attempts: job.max_attempts, last_heartbeat_at: job.last_heartbeat_at, lease_until: job.lease_until,
    });
    setEta(job.eta_seconds);
    setStatus(job.status);
    drawProgress();
    tick();
    if (TERMINAL.includes(job.status)) finished();
  }

  function applyEvent(event) {
    if (seen.has(event.id) || event.id <= state.last_event_id) return;
    seen.add(event.id);
    lastEventId = Math.max(lastEventId, event.id);
    const payload = event.payload || {};
    if (event.attempt) state.attempt = Math.max(state.attempt, event.attempt);
    if (!["queued", "requeued", "cancel_requested", "cancelled", "failed", "completed"].includes(event.kind)) {
      state.last_heartbeat_at = event.created_at; // every trainer callback renews the heartbeat
    }
    switch (event.kind) {
      case "claimed":
      case "started":
        setStatus("running");
        break;
      case "progress":
        batch = { epoch: payload.epoch, batch: payload.batch, batches: payload.batches };
        state.progress = Math.max(state.progress, payload.progress || 0);
        setEta(payload.eta_seconds);
        break;
      case "epoch":
        state.epoch = payload.epoch;
        state.progress = Math.max(state.progress, payload.progress || 0);
        setEta(payload.eta_seconds);
        recordEpoch(payload);
        break;
      case "resumed":
        state.epoch = payload.epoch;
        history.splice(0, history.length, ...history.filter((row) => row.epoch <= payload.epoch));
        drawCharts();
        break;
      case "log":
        appendLog(payload.lines, event.attempt);
        break;
      case "requeued":
        setStatus("queued");
        break;
      case "cancel_requested":
        if (state.status === "running") setStatus("cancelling");
        break;
      case "completed":
        state.progress = 100;
        setStatus(event.kind);
        finished();
        break;
      case "failed":
      case "cancelled":
        setStatus(event.kind);
        finished();
        break;
      default:
        break;
    }
    drawProgress();
    tick();
  }

  // Events stored while the page loaded or the socket was down; live events wait until they are in.
  let catchingUp = null;
  let buffered = [];
  async function catchUp() {
    let url = `${api}events/?after=${lastEventId}`;
    while (url) {
      const page = await Portal.api(url);
      for (const event of page.results) applyEvent(event);
      url = page.next;
    }
  }

  function resync() {
    if (catchingUp) return catchingUp;
    catchingUp = catchUp()
      .catch((error) => Portal.toast(`Could not load the job's events: ${error.message}`))
      .finally(() => {
        catchingUp = null;
        const pending = buffered;
        buffered = [];
        for (const event of pending) applyEvent(event);
      });
    return catchingUp;
  }

  let feed = null;
  if (!state.terminal) {
    feed = Portal.live(`/ws/jobs/${jobId}/`, {
      onSnapshot: (data) => {
        applyJob(data.job);
        if (!state.terminal) resync();
      },
      onEvent: (event) => {
        if (catchingUp) buffered.push(event);
        else applyEvent(event);
      },
    });
    // Lease and heartbeat move without events (the launcher renews the lease): Portal.live's periodic
    // snapshot refreshes them.
  }

  const validation = document.getElementById("validation-job");
  if (validation && state.terminal) followValidation(JSON.parse(validation.textContent));

  // ---- cancel and retry ---------------------------------------------------------------------
  async function act(button, question, url, done) {
    if (!window.confirm(question)) return;
    Portal.busy(button, true);
    try {
      done(await Portal.api(url, { method: "POST" }));
    } catch (error) {
      Portal.toast(error.message);
    } finally {
      Portal.busy(button, false);
    }
  }

  $("cancel-button").addEventListener("click", (event) =>
    act(event.currentTarget, `Cancel training #${jobId}? A running trainer is stopped; its checkpoints are kept.`, `${api}cancel/`, applyJob),
  );
  $("retry-button").addEventListener("click", (event) =>
    act(event.currentTarget, `Start training #${jobId} again as a new job with the same configuration?`, `${api}retry/`, (job) => {
      location.href = `/training/${job.id}/`;
    }),
  );

  drawCharts();
  drawProgress();
  tick();
  setInterval(tick, 1000);
});
