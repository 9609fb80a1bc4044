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
});
