// The annotation page: fetch the next pair and show it, send the choice, and say "Saved" only
// after the server answered that the label is on disk. Conversation turns and responses go in
// as the HTML the server rendered from their markdown (markdown.py lets none of their own HTML
// through); every other text with textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let current = null; // {pair, ticket}
let busy = false;

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function showProgress(progress) {
  $("progress").textContent = `${progress.done} of ${progress.total}`;
}

function setText(id, value) {
  $(id).textContent = value === null || value === undefined || value === "" ? "—" : String(value);
}

function renderConversation(messages) {
  const box = $("conversation");
  box.replaceChildren();
  for (const message of messages) {
    const item = document.createElement("div");
    item.className = `message role-${message.role === "assistant" ? "assistant" : "other"}`;
    const role = document.createElement("span");
    role.className = "role";
    role.textContent = message.role;
    const content = document.createElement("div");
    content.className = "content markdown";
    content.innerHTML = message.content_html;
    item.append(role, content);
    box.append(item);
  }
}

function render(data) {
  showProgress(data.progress);
  current = data.pair ? data : null;
  $("done").hidden = Boolean(data.pair);
  $("task").hidden = !data.pair;
  if (!data.pair) return;
  const pair = data.pair;
  $("pair-id").textContent = pair.pair_id;
  renderConversation(pair.conversation);
  $("candidate-1").innerHTML = pair.candidates_html[0];
  $("candidate-2").innerHTML = pair.candidates_html[1];
  const a = pair.attributes || {};
  $("test-model-banner").hidden = a.test_model !== true;
  setText("attr-task_category", a.task_category);
  setText("attr-objectivity", a.objectivity);
  setText("attr-controversiality", a.controversiality);
  setText("attr-desired_attributes", (a.desired_attributes || []).join("; "));
  setText("pair-guideline", a.annotation_guideline);
  setText("attr-model", a.model);
  $("comment").value = "";
  window.scrollTo(0, 0);
}

async function call(url, options = {}) {
  const response = await fetch(url, { credentials: "same-origin", ...options });
  if (response.status === 401) {
    window.location.reload(); // signed out (or the token was revoked): show the sign-in form
    throw new Error("signed out");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.detail || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

async function loadNext() {
  try {
    render(await call("/api/next", { headers: { Accept: "application/json" } }));
    return true;
  } catch (error) {
    setStatus(`Could not load the next pair: ${error.message}`, true);
    return false;
  }
}

function setBusy(value) {
  busy = value;
  for (const button of document.querySelectorAll("#choices button")) button.disabled = value;
}

async function submit(choice) {
  if (!current || busy) return;
  setBusy(true);
  setStatus("Saving…");
  try {
    const saved = await call("/api/labels", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ ticket: current.ticket, choice, comment: $("comment").value }),
    });
    showProgress(saved.progress);
    setStatus(`Saved (${saved.progress.done} of ${saved.progress.total}).`);
    await loadNext();
  } catch (error) {
    if (error.status === 409 || error.status === 410) {
      // already labelled, lease expired or the pair is full: this pair is done here, move on
      if (await loadNext()) setStatus(`Not saved: ${error.message}. This is the next pair.`, true);
    } else {
      setStatus(`Not saved: ${error.message}. Try again.`, true);
    }
  } finally {
    setBusy(false);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("#choices button")) {
    button.addEventListener("click", () => submit(button.dataset.choice));
  }
  $("reload").addEventListener("click", loadNext);
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const typing = event.target instanceof HTMLTextAreaElement || event.target instanceof HTMLInputElement;
    if (typing) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    const choice = { 1: "1", 2: "2", 3: "cannot_decide" }[event.key];
    if (choice) {
      event.preventDefault();
      submit(choice);
    } else if (event.key === "c" || event.key === "C") {
      event.preventDefault();
      $("comment").focus();
    }
  });
  loadNext();
});
