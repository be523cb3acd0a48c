// "Who is this?": POST /identify, names drawn on the faces. Uses app.js's helpers ($, el, request, faceBox…).
"use strict";

const identifyState = { request: 0 };

function identityText(face) {
  if (!face.identity) return "unknown";
  return `${face.identity.name} ${Math.round(face.identity.similarity * 100)}%`;
}

function renderIdentified(result) {
  const img = $("identify-preview");
  const boxes = $("identify-boxes");
  const list = $("identify-list");
  const named = result.faces.filter((face) => face.identity).length;
  const count = result.faces.length;
  const found = `${count} face${count > 1 ? "s" : ""} found, ${named} named.`;
  $("identify-summary").textContent = count === 0 ? "No face found in this photo." : found;
  result.faces.forEach((face, i) => {
    const text = identityText(face);
    const [x1, y1, x2, y2] = face.box.map(Math.round);
    list.append(el("li", `Face ${i + 1}: ${text} at x ${x1}–${x2}, y ${y1}–${y2} px`));
    if (!img.naturalWidth) return;
    const box = faceBox({ box: face.box }, `${i + 1}. ${text}`, img);
    box.classList.add(face.identity ? "tone-2" : "unknown");
    boxes.append(box);
  });
}

async function identifyPhoto(file) {
  if (!file) return;
  const token = ++identifyState.request;
  showError("");
  $("identify-preview").src = objectUrl("identify", file);
  $("identify-stage").hidden = false;
  $("identify-result").hidden = false;
  $("identify-boxes").replaceChildren();
  $("identify-list").replaceChildren();
  $("identify-summary").textContent = "Looking for people you enrolled…";
  setStatus("Identifying faces…");
  const form = new FormData();
  form.append("image", file);
  try {
    const response = await request("/identify", { method: "POST", body: form }, "Identifying the photo");
    const result = await response.json();
    await imageReady($("identify-preview"));
    if (token !== identifyState.request) return; // a newer photo was chosen meanwhile
    recordModel("embedder", result.model);
    renderIdentified(result);
    setStatus($("identify-summary").textContent);
  } catch (error) {
    if (token !== identifyState.request) return;
    $("identify-summary").textContent = "This photo could not be identified.";
    showError(error.message);
    setStatus("");
  }
}

$("identify-input").addEventListener("change", (event) => identifyPhoto(event.target.files[0]));
$("identify-preview").addEventListener("error", () => {
  $("identify-stage").hidden = true;
});
