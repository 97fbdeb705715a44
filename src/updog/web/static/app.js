// Updog web UI: progressive enhancement only (every page works without it). Loaded from
// /static so the page's Content-Security-Policy needs no inline script and no eval.
(function () {
  "use strict";

  function csrfOf(form) {
    var field = form.querySelector('input[name="csrf_token"]');
    return field ? field.value : "";
  }

  // Drafts save as you go: every change of a wizard field posts the step's form with
  // _action=autosave; the server saves every field that is valid, keeps the others as typed
  // (a reload shows them with their errors) and says which were not saved.
  function setupAutosave(form) {
    var status = document.getElementById("save-status");
    var timer = null;
    var inFlight = false;
    var again = false;

    function save() {
      if (inFlight) { again = true; return; }
      inFlight = true;
      var body = new URLSearchParams(new FormData(form));
      body.set("_action", "autosave");
      fetch(form.action, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        keepalive: true,
        headers: { "X-CSRF-Token": csrfOf(form), "Accept": "application/json" }
      }).then(function (response) {
        return response.ok ? response.json() : null;
      }).then(function (data) {
        if (!status) { return; }
        if (!data) { status.textContent = "Could not save the draft; your entries are still here."; return; }
        var time = new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
        status.textContent = time + ": " + data.message;
      }).catch(function () {
        if (status) { status.textContent = "Could not save the draft; check your connection."; }
      }).finally(function () {
        inFlight = false;
        if (again) { again = false; save(); }
      });
    }

    form.addEventListener("change", function () {
      clearTimeout(timer);
      timer = setTimeout(save, 300);
    });
  }

  // Amounts show thousands separators once the field is left.
  function formatMoney(input) {
    var raw = input.value.replace(/[,\s$]/g, "");
    if (!/^-?\d+(\.\d+)?$/.test(raw)) { return; }
    var parts = raw.split(".");
    var whole = parts[0].replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    input.value = parts.length > 1 ? whole + "." + parts[1] : whole;
  }

  // A running simulation: poll its status and show progress; reload when it ends.
  function setupPolling(panel) {
    var url = panel.getAttribute("data-poll");
    var bar = panel.querySelector("progress");
    var text = panel.querySelector("[data-progress-text]");
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (sim) {
          if (!sim) { setTimeout(tick, 3000); return; }
          var pct = Math.round((sim.progress || 0) * 100);
          if (bar) { bar.value = pct; bar.textContent = pct + " %"; }
          if (text) { text.textContent = pct + " % done (" + sim.status + ")"; }
          if (sim.status === "queued" || sim.status === "running") {
            setTimeout(tick, 1000);
          } else {
            window.location.reload();
          }
        })
        .catch(function () { setTimeout(tick, 3000); });
    }
    setTimeout(tick, 500);
  }

  function openDetailsFor(target) {
    var node = target;
    while (node) {
      if (node.tagName === "DETAILS") { node.open = true; }
      node = node.parentElement;
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("form[data-autosave]");
    if (form) { setupAutosave(form); }
    document.querySelectorAll("input[data-money]").forEach(function (input) {
      input.addEventListener("blur", function () { formatMoney(input); });
    });
    var panel = document.querySelector("[data-poll]");
    if (panel) { setupPolling(panel); }
    var summary = document.getElementById("error-summary");
    if (summary) { summary.focus(); }
    document.querySelectorAll(".error-summary a[href^='#']").forEach(function (link) {
      link.addEventListener("click", function () {
        var target = document.getElementById(link.getAttribute("href").slice(1));
        if (target) { openDetailsFor(target); }
      });
    });
    if (window.location.hash) {
      var target = document.getElementById(window.location.hash.slice(1));
      if (target) { openDetailsFor(target); target.scrollIntoView(); }
    }
  });
})();
