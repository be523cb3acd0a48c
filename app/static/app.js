// The DeepCanvas demo page: plain JavaScript over the service's own HTTP API; no build step, no dependencies.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  photo: null,
  styleFile: null,
  photoRequest: 0,
  styleRequest: 0,
  painting: null, // the running /stylize request (null: none): its AbortController and its NST timer
  nst: null, // GET /styles' nst: whether method=nst runs here, and its bounds
  urls: {},
  answered: new Map(),
};
const HINTS = {
  400: "The file may be damaged: choose another one.",
  413: "Choose a smaller file.",
  415: "Choose another file.",
  422: "Check the settings.",
  401: "Enter the key at the top of the page, then try again.",
  403: "The service did not accept the API key: check it at the top of the page.",
};
// The API key (only where the service requires one, DEEPCANVAS_API_KEYS): kept for this tab, never in the page.
const KEY_ITEM = "deepcanvas-api-key";

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function showError(message) {
  $("alert").textContent = message;
  fitScrollPadding();
}

// The page's alert stays at the top of the window: the page keeps what the keyboard focuses below it (the CSS
// scroll-padding-top), by its height now, not by a guess that a phone's five lines outgrow.
function fitScrollPadding() {
  document.documentElement.style.setProperty("--alert-height", `${$("alert").offsetHeight}px`);
}

function setStatus(text) {
  $("status").textContent = text;
}

// Step 2's messages go beside the Stylize button: by the time it is clicked the page's own are a screen above.
function stylizeError(message) {
  $("stylize-alert").textContent = message;
  if (message) $("stylize-alert").scrollIntoView({ block: "nearest" });
}

function stylizeStatus(text) {
  $("stylize-status").textContent = text;
}

// One object URL per purpose: replacing it revokes the old one, so repeated uploads do not leak memory.
function objectUrl(key, blob) {
  if (state.urls[key]) URL.revokeObjectURL(state.urls[key]);
  state.urls[key] = URL.createObjectURL(blob);
  return state.urls[key];
}

// An Error carrying the API's own `detail` text, plus what the status means for the user. `busy(seconds)`, when
// given, is the whole message of a refusal whose `code` says the model is busy (not loading): another request
// holds it.
async function apiError(response, what, busy) {
  let detail = `HTTP ${response.status}`;
  let code = null;
  try {
    const body = await response.json();
    if (body && body.detail) detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    if (body && typeof body.code === "string") code = body.code;
  } catch {
    // Not JSON (a proxy's page, say): the status alone must do.
  }
  const retry = response.headers.get("Retry-After");
  let hint = HINTS[response.status] || "";
  if (response.status === 503) {
    hint = `The service is busy or still loading its models${retry ? `; try again in ${retry} s` : ""}.`;
  }
  const busyNow = busy && code === "overloaded";
  const error = new Error(busyNow ? busy(retry) : `${what} failed (${response.status}): ${detail}. ${hint}`.trim());
  error.retryAfter = retry ? Number(retry) : null;
  return error;
}

function withKey(options) {
  const key = sessionStorage.getItem(KEY_ITEM);
  const headers = options.headers || {};
  if (!key || headers.Authorization) return options;
  return { ...options, headers: { ...headers, Authorization: `Bearer ${key}` } };
}

// A model route refused for want of a key: show the key field (hidden while the service needs none).
function askForKey(status) {
  if (status !== 401 && status !== 403) return;
  $("key-form").hidden = false;
  if (status === 401) $("api-key").focus();
}

async function request(url, options, what, busy) {
  let response;
  try {
    response = await fetch(url, withKey(options));
  } catch (error) {
    if (error.name === "AbortError") throw error; // cancelled (options.signal): not a failure to report
    throw new Error(`${what} failed: the server could not be reached.`);
  }
  if (!response.ok) {
    askForKey(response.status);
    throw await apiError(response, what, busy);
  }
  return response;
}

function recordModel(role, model) {
  if (!model || !model.name) return;
  state.answered.set(role, `${model.name} ${model.version}`);
  const list = $("answered");
  list.replaceChildren();
  for (const [name, text] of state.answered) list.append(el("dt", name), el("dd", text));
}

// ---- Step 1: the photo, its faces and their labels ----

async function choosePhoto(file) {
  if (!file) return;
  state.photo = file;
  const token = ++state.photoRequest;
  showError("");
  stylizeError("");
  if (!state.painting) stylizeStatus(""); // "see your stylized photo" no longer applies; "Painting…" still does
  $("photo-preview").src = objectUrl("photo", file);
  $("photo-stage").hidden = false;
  $("stylize-result").hidden = true;
  $("faces-result").hidden = false;
  $("face-boxes").replaceChildren();
  $("faces-list").replaceChildren();
  $("faces-summary").textContent = "Looking for faces…";
  setStatus("Finding and classifying faces…");
  const form = new FormData();
  form.append("image", file);
  form.append("detect_faces", "true");
  try {
    const response = await request("/classify", { method: "POST", body: form }, "Classifying the photo");
    const result = await response.json();
    await imageReady($("photo-preview"));
    if (token !== state.photoRequest) return; // a newer photo was chosen meanwhile
    recordModel("classifier", result.model);
    recordModel("detector", result.detector);
    renderFaces(result.faces);
    setStatus($("faces-summary").textContent);
  } catch (error) {
    if (token !== state.photoRequest) return;
    $("faces-summary").textContent = "This photo could not be classified.";
    showError(error.message);
    setStatus("");
  }
}

function imageReady(img) {
  if (img.complete && img.naturalWidth) return Promise.resolve();
  return img.decode().catch(() => undefined); // undisplayable: the list below still tells the result
}

function renderFaces(faces) {
  const img = $("photo-preview");
  const boxes = $("face-boxes");
  const list = $("faces-list");
  $("faces-summary").textContent =
    faces.length === 0 ? "No face found in this photo." : `${faces.length} face${faces.length > 1 ? "s" : ""} found.`;
  faces.forEach((face, i) => {
    const text = `${face.label} ${Math.round(face.score * 100)}%`;
    const [x1, y1, x2, y2] = (face.box || []).map(Math.round);
    const where = face.box ? ` at x ${x1}–${x2}, y ${y1}–${y2} px` : "";
    list.append(el("li", `Face ${i + 1}: ${text}${where}`));
    if (face.box && img.naturalWidth) boxes.append(faceBox(face, `${i + 1}. ${text}`, img));
  });
}

// Percentages of the image's own pixels, so the boxes follow the image at whatever size it is displayed.
function faceBox(face, text, img) {
  const [x1, y1, x2, y2] = face.box;
  const width = img.naturalWidth;
  const height = img.naturalHeight;
  const pct = (value) => `${(100 * value).toFixed(3)}%`;
  const tone = Math.max(0, Object.keys(face.probabilities || {}).sort().indexOf(face.label)) % 4;
  const box = el("div", undefined, `face-box tone-${tone}`);
  box.style.left = pct(x1 / width);
  box.style.top = pct(y1 / height);
  box.style.width = pct((x2 - x1) / width);
  box.style.height = pct((y2 - y1) / height);
  // Keep the label inside the photo: below the top edge of a box at the top, right-aligned on the right half.
  if (y1 / height < 0.08) box.classList.add("label-inside");
  if ((x1 + x2) / 2 > width / 2) box.classList.add("label-end");
  box.setAttribute("aria-hidden", "true"); // the numbered list says the same in words
  box.append(el("span", text, "face-label"));
  return box;
}

// ---- Step 2: the style gallery and stylization ----

async function loadGallery() {
  const gallery = $("gallery");
  try {
    const response = await request("/styles", {}, "Loading the style gallery");
    const { styles, nst } = await response.json();
    const upload = gallery.querySelector("input[data-upload]");
    gallery.replaceChildren(...(upload ? [upload.parentElement] : []), ...styles.map(styleOption));
    if (!gallery.querySelector("input:checked") && styles.length) gallery.querySelector("input").checked = true;
    if (!styles.length) gallery.append(el("p", "The gallery is empty: upload a style image below.", "hint"));
    showStyleAbout();
    offerModes(nst);
    if ($("alert").textContent.startsWith("Loading the style gallery")) showError(""); // an earlier try's 503
  } catch (error) {
    showError(error.message);
    gallery.replaceChildren(el("p", "The gallery is not available yet.", "hint"));
    if (error.retryAfter) setTimeout(loadGallery, 1000 * error.retryAfter);
  }
}

function styleOption(style) {
  const input = el("input", undefined, "visually-hidden");
  input.type = "radio";
  input.name = "style";
  input.value = style.name;
  const img = el("img", undefined, "thumb");
  img.src = style.url;
  img.alt = "";
  img.loading = "lazy";
  const label = el("label", undefined, "style-option");
  const credit = style.artist ? `${style.artist}${style.year ? `, ${style.year}` : ""}` : "";
  label.title = [style.title, credit, style.description].filter(Boolean).join(" — ");
  input.dataset.credit = credit;
  input.dataset.description = style.description || "";
  label.append(input, img, el("span", style.title, "style-title"));
  if (credit) label.append(el("span", credit, "style-artist"));
  // The thumbnail is decorative (alt=""): what the painting looks like is its radio button's description, for
  // screen readers (the title tooltip is only for a mouse; hidden, the text stays out of the button's name).
  if (style.description) {
    const about = el("span", style.description);
    about.id = `style-about-${style.name}`;
    about.hidden = true;
    input.setAttribute("aria-describedby", about.id);
    label.append(about);
  }
  return label;
}

// A file the browser cannot show is refused at once, and the style chosen before stays chosen: kept as a
// broken "Your image" tile it would only fail at Stylize.
async function chooseStyleFile(file) {
  if (!file) return;
  const token = ++state.styleRequest;
  const shown = await displayable(file);
  if (token !== state.styleRequest) return; // another file was chosen meanwhile
  if (!shown) {
    $("style-input").value = ""; // choosing the same file again is a change, and says so again
    const formats = "a JPEG, PNG, WebP, BMP or GIF file";
    return stylizeError(`“${file.name}” is not an image this browser can show: choose ${formats} as your style.`);
  }
  stylizeError("");
  state.styleFile = file;
  let input = $("gallery").querySelector("input[data-upload]");
  if (!input) {
    const label = styleOption({ name: "your-style", title: "Your image", url: "" });
    input = label.querySelector("input");
    input.dataset.upload = "true";
    $("gallery").prepend(label);
  }
  input.parentElement.querySelector("img").src = objectUrl("style", file);
  input.checked = true;
  showStyleAbout();
}

// The chosen style's title, credit and description under the gallery: a sighted keyboard or phone user has no
// tooltip, and a thumbnail alone does not say what the painting is.
function showStyleAbout() {
  const about = $("style-about");
  const choice = $("gallery").querySelector("input[name=style]:checked");
  about.hidden = !choice;
  if (!choice) return;
  if (choice.dataset.upload) {
    about.replaceChildren(el("strong", "Your image"), `: “${state.styleFile.name}”.`);
    return;
  }
  const title = choice.parentElement.querySelector(".style-title").textContent;
  const { credit, description } = choice.dataset;
  about.replaceChildren(el("strong", title), credit ? `, ${credit}` : "", description ? `: ${description}` : ".");
}

// ---- The mode: fast (AdaIN) or finest (NST), where this service runs NST ----

function secondsText(seconds) {
  return `${Number(seconds.toFixed(1))}`;
}

// "12 s", kept on one line
function secs(seconds) {
  return `${secondsText(seconds)}\u00a0s`;
}

// What GET /styles says of NST (`nst`; absent from an older service): offered with its bounds, or shown
// disabled with the reason. The fields that NST does not take (alpha, manner, the photo's colours) are hidden
// while it is chosen, and its time budget shown instead.
function offerModes(nst) {
  state.nst = nst && nst.available ? nst : null;
  const radio = $("method-nst");
  $("mode-fieldset").hidden = false;
  $("nst-unavailable").hidden = Boolean(state.nst);
  radio.disabled = !state.nst;
  if (state.nst) {
    radio.removeAttribute("aria-describedby");
    const limit = state.nst.max_seconds;
    const budget = $("nst-seconds");
    budget.max = limit;
    budget.min = Math.min(1, limit);
    if (!budget.dataset.chosen || Number(budget.value) > limit) budget.value = secondsText(limit);
    for (const id of ["nst-limit", "nst-seconds-max"]) $(id).textContent = secondsText(limit);
    $("nst-side").textContent = state.nst.max_side;
  } else {
    radio.setAttribute("aria-describedby", "nst-unavailable"); // a hidden reason would still be read
    if (radio.checked) document.querySelector("input[name=method][value=adain]").checked = true;
  }
  showMode();
}

function chosenMethod() {
  return state.nst && $("method-nst").checked ? "nst" : "adain";
}

function showMode() {
  const nst = chosenMethod() === "nst";
  $("budget-field").hidden = !nst;
  $("adain-fields").hidden = nst;
}

async function displayable(file) {
  const url = URL.createObjectURL(file);
  const probe = new Image();
  probe.src = url;
  try {
    await probe.decode();
    return true;
  } catch {
    return false;
  } finally {
    URL.revokeObjectURL(url);
  }
}

function stylizeForm(photo, choice, budget) {
  const form = new FormData();
  form.append("content", photo);
  if (choice.dataset.upload) form.append("style", state.styleFile);
  else form.append("style_name", choice.value);
  if (budget) {
    // NST takes one style and its time budget; alpha, manner and preserve_color would earn a 422
    form.append("method", "nst");
    form.append("max_seconds", String(budget));
    form.append("format", "png");
    return form;
  }
  form.append("alpha", $("alpha").value);
  // a manner the user chose, 0 included (it overrides a model whose own default paints each painting's manner);
  // untouched, the model's default applies
  if (!$("manner-field").hidden && $("manner").dataset.chosen) form.append("manner", $("manner").value);
  form.append("preserve_color", $("preserve-color").checked ? "true" : "false");
  form.append("format", "png");
  return form;
}

// The NST time budget the field holds, or null (with the reason shown) when it is not a number in its bounds.
function chosenBudget() {
  const field = $("nst-seconds");
  const seconds = Number(field.value);
  if (field.value === "" || !field.checkValidity() || !(seconds > 0)) {
    stylizeError(`Choose a time budget of ${field.min} to ${field.max} seconds.`);
    field.focus();
    return null;
  }
  return seconds;
}

function busyWithAnotherPainting(retry) {
  const when = retry ? `try again in ${retry} s` : "try again shortly";
  return `Another painting is in progress: this service paints one picture in the finest mode at a time. Please ${when}, or use the fast mode now.`;
}

async function stylize() {
  const choice = $("gallery").querySelector("input[name=style]:checked");
  if (!state.photo) return stylizeError("Choose a photo first (step 1).");
  if (!choice) return stylizeError("Choose a style from the gallery, or upload your own style image.");
  if (state.painting) return;
  const nst = chosenMethod() === "nst";
  const budget = nst ? chosenBudget() : null;
  if (nst && budget === null) return;
  // The answer is shown with what was sent, whatever photo is chosen while it paints.
  const sent = {
    photo: state.photo,
    nst,
    styleName: choice.dataset.upload ? "my-style" : choice.value,
    styleTitle: choice.dataset.upload
      ? `your image “${state.styleFile.name}”`
      : choice.parentElement.querySelector(".style-title").textContent,
  };
  const button = $("stylize-button");
  // aria-disabled rather than disabled: a disabled button would throw the keyboard focus away.
  button.setAttribute("aria-disabled", "true");
  showError("");
  stylizeError("");
  const painting = { controller: new AbortController(), started: performance.now(), timer: null };
  state.painting = painting;
  if (nst) {
    stylizeStatus(`Painting in the finest mode, for up to ${secs(budget)}…`);
    showProgress(painting, budget);
  } else {
    stylizeStatus("Painting… this can take a few seconds.");
  }
  try {
    const body = stylizeForm(sent.photo, choice, budget);
    const options = { method: "POST", body, signal: painting.controller.signal };
    const response = await request("/stylize", options, "Stylizing", nst ? busyWithAnotherPainting : undefined);
    const blob = await response.blob();
    const seconds = secs((performance.now() - painting.started) / 1000);
    recordModel("style", { name: response.headers.get("X-Model-Name"), version: response.headers.get("X-Model-Version") });
    const steps = response.headers.get("X-NST-Steps");
    const note = nst ? `Finest mode: ${steps} optimisation steps in ${seconds}` : `Fast mode, ${seconds}`;
    showStylized(blob, sent, note);
    const done = nst ? `Stylized in ${seconds} with ${steps} optimisation steps` : "Stylized";
    stylizeStatus(`${done}: see “Your stylized photo”.`);
  } catch (error) {
    stylizeStatus(error.name === "AbortError" ? "Cancelled: the painting was stopped." : "");
    if (error.name !== "AbortError") stylizeError(error.message);
  } finally {
    hideProgress(painting);
    state.painting = null;
    button.removeAttribute("aria-disabled");
  }
}

// The time NST has spent against its budget, each second (a timer role: not announced at every tick), and
// Cancel, which aborts the request: the service stops painting when its client leaves.
function showProgress(painting, budget) {
  const bar = $("nst-bar");
  bar.max = budget;
  const tick = () => {
    const elapsed = (performance.now() - painting.started) / 1000;
    bar.value = Math.min(elapsed, budget);
    const shown = secs(Math.floor(elapsed));
    $("nst-elapsed").textContent =
      elapsed <= budget ? `${shown} of up to ${secs(budget)}` : `${shown}: finishing the painting…`;
  };
  tick();
  painting.timer = setInterval(tick, 250);
  $("nst-progress").hidden = false;
  $("cancel-button").hidden = false;
}

function hideProgress(painting) {
  clearInterval(painting.timer);
  const cancel = $("cancel-button");
  const hadFocus = document.activeElement === cancel;
  $("nst-progress").hidden = true;
  cancel.hidden = true;
  if (hadFocus) $("stylize-button").focus(); // not lost to the page's top with the hidden button
}

function cancelPainting() {
  if (state.painting) state.painting.controller.abort();
}

function showStylized(blob, { photo, nst, styleName, styleTitle }, note) {
  const url = objectUrl("stylized", blob);
  const base = photo.name.replace(/\.[^.]*$/, "").replace(/[^A-Za-z0-9._-]+/g, "_") || "photo";
  $("original-image").src = objectUrl("original", photo);
  $("original-image").alt = `The original photo, “${photo.name}”`;
  $("stylized-image").src = url;
  // Which photo (a late answer pairs an earlier one) in which style: what a sighted person sees at a glance.
  $("stylized-image").alt = `“${photo.name}” repainted in the style of ${styleTitle}`;
  const link = $("download-link");
  link.href = url;
  link.download = `${base}-${styleName}${nst ? "-nst" : ""}.png`;
  $("stylized-note").textContent = note;
  $("stylize-result").hidden = false;
  $("stylize-result").scrollIntoView({ block: "nearest" });
}

// ---- Step 3: the loaded models ----

async function loadModels() {
  const table = $("models-table");
  const row = (cells) => {
    const tr = el("tr");
    tr.append(...cells.map((text) => el("td", text)));
    return tr;
  };
  try {
    const { models } = await (await request("/models", {}, "Listing the models")).json();
    // the engine that runs each network (auto picks it per artifact; an ONNX-only detector never runs on torch)
    const architecture = (m) => (m.engine ? `${m.architecture} (runs on ${m.engine})` : m.architecture);
    table.replaceChildren(...models.map((m) => row([m.role, m.name, m.version, architecture(m), m.provenance])));
    // the manner slider only for a style model that matches each painting's manner (others answer 422)
    const style = models.find((m) => m.role === "style");
    $("manner-field").hidden = !(style && (style.options || []).includes("manner"));
  } catch (error) {
    table.replaceChildren(row([error.message]));
  }
}

// ---- Wiring ----

function setUpDropZone() {
  const zone = $("drop-zone");
  // Outside the zone a dropped file must not replace the page.
  for (const type of ["dragover", "drop"]) document.addEventListener(type, (event) => event.preventDefault());
  zone.addEventListener("dragover", () => zone.classList.add("dragging"));
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    zone.classList.remove("dragging");
    choosePhoto(event.dataTransfer.files[0]);
  });
}

function setUpKeyForm() {
  const input = $("api-key");
  input.value = sessionStorage.getItem(KEY_ITEM) || "";
  $("key-form").hidden = !input.value;
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (key) sessionStorage.setItem(KEY_ITEM, key);
    else sessionStorage.removeItem(KEY_ITEM);
    showError("");
    stylizeError("");
    setStatus(key ? "API key saved for this tab: choose the photo again." : "API key removed.");
  });
}

function init() {
  setUpKeyForm();
  $("photo-input").addEventListener("change", (event) => choosePhoto(event.target.files[0]));
  $("style-input").addEventListener("change", (event) => chooseStyleFile(event.target.files[0]));
  $("alpha").addEventListener("input", (event) => {
    $("alpha-value").textContent = Number(event.target.value).toFixed(2);
  });
  $("manner").addEventListener("input", (event) => {
    event.target.dataset.chosen = "true";
    event.target.removeAttribute("aria-valuetext"); // announced by its value from now on
    $("manner-value").textContent = Number(event.target.value).toFixed(2);
  });
  $("stylize-button").addEventListener("click", stylize);
  $("cancel-button").addEventListener("click", cancelPainting);
  $("gallery").addEventListener("change", showStyleAbout);
  for (const radio of document.querySelectorAll("input[name=method]")) radio.addEventListener("change", showMode);
  $("nst-seconds").addEventListener("input", (event) => {
    event.target.dataset.chosen = "true"; // a later gallery reload keeps the user's budget
  });
  // A file the browser cannot show: hide the broken picture, the server's answer still says why.
  $("photo-preview").addEventListener("error", () => {
    $("photo-stage").hidden = true;
  });
  document.querySelector("details").addEventListener("toggle", (event) => event.target.open && loadModels());
  setUpDropZone();
  new ResizeObserver(fitScrollPadding).observe($("alert")); // a turned phone, a zoomed page: new line breaks
  loadGallery();
  loadModels();
}

init();
