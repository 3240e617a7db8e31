// Bulkhead console: the few things that need a script. Everything works
// without it; the policy editor then checks the policy when it is saved.
"use strict";
(function () {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : "";

  // The policy editor checks the statement as the admin types.
  document.querySelectorAll("textarea[data-validate]").forEach(function (area) {
    const out = document.getElementById(area.getAttribute("aria-describedby"));
    let timer = 0, seq = 0;
    const check = function () {
      const mine = ++seq;
      fetch(area.dataset.validate, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ statement: area.value }),
      }).then(function (r) { return r.json(); }).then(function (a) {
        if (mine !== seq || !out) return;
        out.textContent = a.message;
        out.classList.toggle("ok", !!a.valid);
        out.classList.toggle("bad", !a.valid);
        area.setAttribute("aria-invalid", a.valid ? "false" : "true");
      }).catch(function () {
        if (mine === seq && out) out.textContent = "The policy could not be checked right now.";
      });
    };
    area.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(check, 300);
    });
  });
})();
