// shadowdiff admin UI. The pages work without this file: it wires the copy buttons and the
// buttons of the controls panel (the state is on the page either way).
"use strict";

// A copy button puts its rule on the clipboard where the page may write it (localhost, https);
// elsewhere (plain http to a host name) it selects the text, for Ctrl+C.
document.querySelectorAll("button[data-copy]").forEach((button) => {
  button.hidden = false;
  button.addEventListener("click", async () => {
    const source = document.getElementById(button.dataset.copy);
    try {
      await navigator.clipboard.writeText(source.textContent);
      button.textContent = "Copied";
    } catch {
      const range = document.createRange();
      range.selectNodeContents(source);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      button.textContent = "Selected: press Ctrl+C";
    }
    setTimeout(() => { button.textContent = "Copy"; }, 2500);
  });
});

// The controls panel: a button sends one change to the API (the session's cookie, and the header
// that shows this page sent it), then the panel and the header's badge are drawn again from this
// page as the server renders it now, so the page never shows a state of its own making.
function say(text, failed) {
  const status = document.getElementById("control-status");
  if (!status) return;
  status.textContent = text;
  status.classList.toggle("failed", Boolean(failed));
}

async function redraw() {
  const response = await fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
  let drawn = false;
  for (const id of ["controls", "state-badge"]) {
    const now = fresh.getElementById(id);
    const old = document.getElementById(id);
    if (now && old) {
      old.replaceWith(document.adoptNode(now));
      drawn = true;
    }
  }
  return drawn;
}

function describe(after) {
  const mirroring = after.mirroring === "paused" ? "mirroring PAUSED" : "mirroring on";
  return `${mirroring}, sample rate ${after.sample_rate}, re-ask rate ${after.reask_rate} (live: lost on restart)`;
}

async function change(button) {
  const panel = document.getElementById("controls");
  const setting = button.dataset.change;
  let value = "reset" in button.dataset ? null : button.dataset.value; // null: back to the file's value
  if (button.dataset.input) {
    const raw = document.getElementById(button.dataset.input).value.trim();
    value = Number(raw);
    if (raw === "" || !Number.isFinite(value)) {
      say(`${setting} must be a number from 0 to 1`, true);
      return;
    }
  }
  button.disabled = true;
  say("Sending…");
  let response;
  let answer = {};
  try {
    response = await fetch(panel.dataset.endpoint, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", [panel.dataset.csrfHeader]: "1" },
      body: JSON.stringify({ [setting]: value }),
    });
    answer = await response.json().catch(() => ({}));
  } catch (error) {
    button.disabled = false;
    say(`The admin listener could not be reached (${error.message}): nothing was changed.`, true);
    return;
  }
  if (!response.ok) {
    button.disabled = false;
    say(`Refused (HTTP ${response.status}): ${answer.error || response.statusText}`, true);
    return;
  }
  let drawn = false;
  try {
    drawn = await redraw();
  } catch {
    drawn = false;
  }
  say(drawn ? `Done: ${describe(answer.after)}.` : `Done: ${describe(answer.after)}. Reload the page to see it.`);
  if (!drawn) button.disabled = false;
}

document.addEventListener("click", (event) => {
  const button = event.target.closest("#controls button[data-change]");
  if (button && !button.disabled) change(button);
});

// Enter in a rate's box presses its Set button.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Enter" || !event.target.matches("#controls input[type=number]")) return;
  const button = document.querySelector(`#controls button[data-input="${event.target.id}"]`);
  if (button && !button.disabled) {
    event.preventDefault();
    change(button);
  }
});
