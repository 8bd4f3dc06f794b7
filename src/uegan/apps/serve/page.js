// The page of `uegan serve`: uploads each photo as the raw body of one request, polls the
// server for progress, and shows before / after, times, scores and downloads. Nothing here
// comes from the network but this server; the session id lives in this tab only.
"use strict";

const state = { info: null, session: null, references: new Map(), cards: new Map(),
                queue: Promise.resolve(), polling: false, localCount: 0 };
const $ = (selector, root = document) => root.querySelector(selector);

function stem(name) { return name.replace(/\.[^.]*$/, ""); }
function humanSize(bytes) {  // as the server writes sizes in its messages
  if (bytes >= 2 ** 30) return parseFloat((bytes / 2 ** 30).toFixed(1)) + " GB";
  if (bytes >= 2 ** 20) return parseFloat((bytes / 2 ** 20).toFixed(1)) + " MB";
  return bytes >= 1024 ? (bytes / 1024).toFixed(0) + " KB" : bytes + " bytes";
}

async function api(method, path, params = {}, body = undefined) {
  const options = { method, headers: {} };
  if (method === "POST") options.headers[state.info ? state.info.upload_header : "X-Uegan-Upload"] = "1";
  if (body !== undefined) {
    options.body = body;
    options.headers["Content-Type"] = "application/octet-stream";
  }
  const response = await fetch(path + "?" + new URLSearchParams(params), options);
  let data;
  try { data = await response.json(); } catch (_) { data = {}; }
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

function url(path, params) {
  return path + "?" + new URLSearchParams({ session: state.session, ...params });
}

// -- checkpoints -------------------------------------------------------------------------------

function showModels() {
  const box = $("#models");
  for (const model of state.info.models) {
    const label = document.createElement("label");
    const box_ = document.createElement("input");
    box_.type = "checkbox";
    box_.value = model.index;
    box_.checked = true;
    box_.disabled = state.info.models.length === 1;
    label.append(box_, " " + model.label + " ");
    if (model.variant) {
      const variant = document.createElement("span");
      variant.className = "variant";
      variant.textContent = model.variant;
      label.append(variant);
    }
    box.append(label);
  }
}

function chosenModels() {
  return [...document.querySelectorAll("#models input:checked")].map(input => input.value);
}

function modelLabel(index) { return state.info.models[index].label; }

// -- uploads -----------------------------------------------------------------------------------

function later(task) {
  state.queue = state.queue.then(task).catch(error => console.error(error));
}

function addReferences(files) {
  for (const file of files) {
    later(async () => {
      const list = $("#reference-list");
      try {
        const answer = await api("POST", "/api/references",
                                 { session: state.session, name: file.name }, file);
        state.references.set(stem(file.name), answer.reference);
        list.textContent = [...state.references.keys()].join(", ");
      } catch (error) {
        list.textContent = error.message;
        list.className = "error";
      }
    });
  }
}

function addPhotos(files) {
  const models = chosenModels();
  for (const file of files) {
    const card = newCard(file.name);
    if (models.length === 0) {
      fail(card, `${file.name}: choose at least one checkpoint first`);
      continue;
    }
    if (file.size > state.info.max_upload_bytes) {
      fail(card, `${file.name}: ${humanSize(file.size)} is over the upload limit of ` +
                 `${humanSize(state.info.max_upload_bytes)} (uegan serve --max-upload-mb)`);
      continue;
    }
    later(async () => {
      $(".status", card.element).textContent = "uploading";
      const params = { session: state.session, name: file.name, models: models.join(",") };
      const reference = state.references.get(stem(file.name));
      if (reference) params.reference = reference;
      try {
        const answer = await api("POST", "/api/photos", params, file);
        card.job = answer.job;
        state.cards.set(answer.job, card);
        $(".status", card.element).textContent = "waiting";
        poll();
      } catch (error) {
        fail(card, error.message);
      }
    });
  }
  summarise();
}

// -- one card a photo --------------------------------------------------------------------------

function newCard(name) {
  const element = $("#card-template").content.firstElementChild.cloneNode(true);
  $(".name", element).textContent = name;
  $(".status", element).textContent = "queued";
  $("#list").append(element);
  $("#toolbar").hidden = false;
  const card = { element, name, job: null, status: "uploading", picked: false, local: ++state.localCount };
  state.cards.set("local-" + card.local, card);
  const slider = $(".slider", element);
  slider.addEventListener("input", () => place(card, slider.value));
  const viewer = $(".viewer", element);
  viewer.addEventListener("pointerdown", event => {
    viewer.setPointerCapture(event.pointerId);
    drag(card, event);
  });
  viewer.addEventListener("pointermove", event => { if (event.buttons) drag(card, event); });
  for (const select of element.querySelectorAll("select")) {
    select.addEventListener("change", () => { card.picked = true; showPair(card); });
  }
  return card;
}

function drag(card, event) {
  const box = $(".viewer", card.element).getBoundingClientRect();
  const value = Math.min(100, Math.max(0, 100 * (event.clientX - box.left) / box.width));
  $(".slider", card.element).value = value;
  place(card, value);
}

function place(card, value) {
  $(".right", card.element).style.clipPath = `inset(0 0 0 ${value}%)`;
  $(".divider", card.element).style.left = `${value}%`;
}

function fail(card, message) {
  card.status = "failed";
  card.element.classList.add("failed");
  $(".status", card.element).textContent = "failed";
  const error = $(".error", card.element);
  error.textContent = message;
  error.hidden = false;
  summarise();
}

function imageName(image) { return image === "input" ? "original" : modelLabel(image); }

function setOptions(card, select, images, chosen) {
  if (select.options.length === images.length) return;
  const keep = card.picked ? select.value : chosen;  // the default until the user picks
  select.replaceChildren(...images.map(image => new Option(imageName(image), image)));
  select.value = images.includes(keep) ? keep : chosen;
}

function showPair(card) {
  for (const side of ["left", "right"]) {
    const image = $(`.pick-${side}`, card.element).value;
    const img = $(`img.${side}`, card.element);
    const source = url("/api/preview", { job: card.job, image });
    if (img.getAttribute("src") !== source) img.src = source;
    $(`.tag-${side}`, card.element).textContent = imageName(image);
  }
}

function formatScore(value, metric) {
  if (value === "inf") return "∞";
  return value === undefined || value === null ? "" : Number(value).toFixed(metric.digits);
}

function showTable(card, job) {
  const rows = job.input_scores ? [{ name: "original", seconds: null, scores: job.input_scores, download: null }] : [];
  for (const result of job.results) {
    const model = state.info.models[result.model];
    rows.push({ name: model.label, variant: model.variant, seconds: result.seconds,
                scores: result.scores, download: url("/api/download", { job: job.id, model: result.model }),
                file: result.download });
  }
  const metrics = state.info.metrics;
  const best = {};
  for (const metric of metrics) {
    const values = rows.map(row => row.scores ? row.scores[metric.name] : null)
                       .filter(value => value !== null && value !== undefined)
                       .map(value => value === "inf" ? Infinity : value);
    if (values.length > 1) best[metric.name] = metric.lower_is_better ? Math.min(...values) : Math.max(...values);
  }
  const body = $("tbody", card.element);
  body.replaceChildren(...rows.map(row => {
    const tr = document.createElement("tr");
    const name = document.createElement("td");
    name.textContent = row.name + (row.variant ? ` (${row.variant})` : "");
    const time = document.createElement("td");
    time.className = "number time";
    time.textContent = row.seconds === null ? "" : `${row.seconds.toFixed(2)} s`;
    tr.append(name, time);
    for (const metric of metrics) {
      const cell = document.createElement("td");
      cell.className = "number " + metric.name;
      const value = row.scores ? row.scores[metric.name] : null;
      cell.textContent = formatScore(value, metric);
      if (value !== null && value !== undefined && best[metric.name] === (value === "inf" ? Infinity : value)) {
        cell.classList.add("best");
      }
      tr.append(cell);
    }
    const link = document.createElement("td");
    if (row.download) {
      const a = document.createElement("a");
      a.className = "button small download";
      a.href = row.download;
      a.download = row.file;
      a.textContent = "Download";
      a.title = `${row.file}: full resolution, with its colour profile and EXIF`;
      link.append(a);
    }
    tr.append(link);
    return tr;
  }));
  const scored = rows.some(row => row.scores);
  for (const cell of card.element.querySelectorAll("th.metric")) cell.hidden = !scored;
  for (const metric of metrics) {
    for (const cell of card.element.querySelectorAll("td." + metric.name)) cell.hidden = !scored;
  }
  $(".results", card.element).hidden = false;
}

function update(card, job) {
  const element = card.element;
  card.status = job.status;
  element.classList.toggle("done", job.status === "done");
  const seconds = job.results.reduce((sum, result) => sum + result.seconds, 0);
  $(".status", element).textContent = job.status === "failed" ? "failed"
    : job.status === "done" ? `done in ${seconds.toFixed(2)} s` : job.stage;
  $(".bar", element).value = job.progress;
  if (job.size) $(".size", element).textContent = `${job.size[0]} × ${job.size[1]}`;
  if (job.error) fail(card, job.error);
  const note = $(".note", element);
  note.hidden = !job.note;
  note.textContent = job.note || "";
  if (job.preview) {
    const images = ["input", ...job.results.map(result => String(result.model))];
    setOptions(card, $(".pick-left", element), images, "input");
    setOptions(card, $(".pick-right", element), images, images.length > 1 ? images[1] : "input");
    showPair(card);
    $(".compare", element).hidden = false;
  }
  if (job.results.length) showTable(card, job);
}

// -- progress ----------------------------------------------------------------------------------

function summarise() {
  const cards = [...new Set(state.cards.values())];
  const done = cards.filter(card => card.status === "done").length;
  const failed = cards.filter(card => card.status === "failed").length;
  const working = cards.length - done - failed;
  const parts = [`${cards.length} photo${cards.length === 1 ? "" : "s"}`, `${done} done`];
  if (failed) parts.push(`${failed} failed`);
  if (working) parts.push(`${working} in progress`);
  $("#summary").textContent = parts.join(" · ");
  const zip = $("#zip");
  zip.href = url("/api/zip", {});
  zip.classList.toggle("disabled", done === 0);
}

async function poll() {
  if (state.polling) return;
  state.polling = true;
  try {
    for (;;) {
      const answer = await api("GET", "/api/jobs", { session: state.session });
      for (const job of answer.jobs) {
        const card = state.cards.get(job.id);
        if (card && card.status !== "done" && card.status !== "failed") update(card, job);
      }
      summarise();
      const open = [...new Set(state.cards.values())].some(card => card.job && card.status !== "done" && card.status !== "failed");
      if (!open) break;
      await new Promise(resolve => setTimeout(resolve, 400));
    }
  } catch (error) {
    $("#summary").textContent = `the server did not answer (${error.message}); is uegan serve still running?`;
  } finally {
    state.polling = false;
  }
}

// -- start -------------------------------------------------------------------------------------

async function start() {
  state.info = await api("GET", "/api/info");
  state.session = (await api("POST", "/api/session")).session;
  showModels();
  const accept = state.info.extensions.join(",");
  $("#photos").accept = accept;
  $("#references").accept = accept;
  $("#limits").textContent = `JPEG, PNG, TIFF, WebP or BMP, up to ${humanSize(state.info.max_upload_bytes)} and ` +
    `${(state.info.max_pixels / 1e6).toFixed(0)} megapixels each. The downloads are full size, ` +
    `with the photo's EXIF and an sRGB colour profile, as uegan enhance writes them.`;
  $("#photos").addEventListener("change", event => { addPhotos([...event.target.files]); event.target.value = ""; });
  $("#references").addEventListener("change", event => { addReferences([...event.target.files]); event.target.value = ""; });
  const drop = $("#drop");
  document.addEventListener("dragover", event => { event.preventDefault(); drop.classList.add("over"); });
  document.addEventListener("dragleave", () => drop.classList.remove("over"));
  document.addEventListener("drop", event => {
    event.preventDefault();
    drop.classList.remove("over");
    addPhotos([...event.dataTransfer.files]);
  });
  document.body.dataset.ready = "1";
}

start().catch(error => { $("#limits").textContent = `cannot start: ${error.message}`; });
