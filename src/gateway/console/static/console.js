// matgate console: small progressive enhancement; the pages work without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Put the keyboard focus on the first field with an error.
  const invalid = document.querySelector('[aria-invalid="true"]');
  if (invalid) invalid.focus();
  // Ask before applying a policy change.
  const apply = document.querySelector("form.apply");
  if (apply) {
    apply.addEventListener("submit", (event) => {
      if (apply.dataset.confirmed === "yes") return;
      if (!window.confirm("Apply this policy change? It becomes a new policy version.")) {
        event.preventDefault();
      }
    });
  }
  // Follow a running job: poll its progress, and reload once it ends to show the card.
  const status = document.querySelector("#job-status[data-poll]");
  if (status) pollJob(status.dataset.poll);
});

function pollJob(url) {
  const state = document.getElementById("job-state");
  const stage = document.getElementById("job-stage");
  const bar = document.getElementById("job-progress");
  const tick = async () => {
    let answer;
    try {
      const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (!response.ok) { window.location.reload(); return; }
      answer = await response.json();
    } catch (error) {
      window.setTimeout(tick, 4000); // the node is busy or restarting: try again later
      return;
    }
    state.textContent = answer.status;
    stage.textContent = answer.stage || "";
    bar.value = answer.progress;
    bar.textContent = Math.round(answer.progress * 100) + "%";
    if (answer.running) window.setTimeout(tick, 1000);
    else window.location.reload();
  };
  window.setTimeout(tick, 1000);
}
