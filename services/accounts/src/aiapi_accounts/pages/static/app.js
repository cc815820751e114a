// Progressive enhancement only: every page works without this file.
// Copy buttons: shown when the script runs; copy the text of the element they name.
"use strict";
(function () {
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain-HTTP pages on a non-local host have no clipboard API: fall back to a selection.
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = document.execCommand("copy");
    document.body.removeChild(area);
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function setUpCopyButtons() {
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      var target = document.getElementById(button.getAttribute("data-copy"));
      if (!target) return;
      var label = button.textContent;
      button.hidden = false;
      button.setAttribute("aria-live", "polite");
      button.addEventListener("click", function () {
        copyText(target.textContent).then(
          function () { button.textContent = "Copied"; },
          function () { button.textContent = "Copy failed: select the text"; }
        );
        setTimeout(function () { button.textContent = label; }, 2000);
      });
    });
  }

  // Top-up page: the deposits table follows the JSON API (the server words each state).
  function when(iso) {
    if (!iso) return "never";
    return new Date(iso).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  function cell(row, text, className) {
    var td = document.createElement("td");
    if (className) td.className = className;
    if (text !== null) td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function depositRow(d) {
    var row = document.createElement("tr");
    row.setAttribute("data-state", d.state);
    cell(row, when(d.first_seen_at));
    var asset = cell(row, d.asset + " ");
    var network = document.createElement("span");
    network.className = "hint";
    network.textContent = d.network;
    asset.appendChild(network);
    cell(row, d.amount, "num");
    cell(row, d.usd === null ? "not priced yet" : d.usd, "num");
    cell(row, d.progress, "progress");
    var tx = cell(row, null);
    var short = d.tx_hash.slice(0, 10) + "\u2026";
    var link;
    if (d.explorer_url && /^https?:\/\//.test(d.explorer_url)) {
      link = document.createElement("a");
      link.href = d.explorer_url;
      link.rel = "noopener noreferrer";
      link.target = "_blank";
    } else {
      link = document.createElement("code");
      link.title = d.tx_hash;
    }
    link.textContent = short;
    tx.appendChild(link);
    return row;
  }

  function renderDeposits(body, deposits) {
    var rows = deposits.map(depositRow);
    if (!rows.length) {
      var empty = document.createElement("tr");
      empty.className = "empty";
      var td = cell(empty, "No deposits yet.");
      td.colSpan = 6;
      rows = [empty];
    }
    body.replaceChildren.apply(body, rows);
  }

  function followDeposits() {
    var live = document.getElementById("deposits-live");
    var table = document.getElementById("deposits");
    if (!live || !table) return;
    var body = table.tBodies[0];
    var every = parseInt(live.getAttribute("data-every-ms"), 10) || 3000;
    var url = live.getAttribute("data-poll");
    function poll() {
      if (document.hidden) { setTimeout(poll, every); return; }
      fetch(url, { credentials: "same-origin", headers: { accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (view) { if (view) renderDeposits(body, view.deposits); })
        .catch(function () { /* the next poll tries again */ })
        .then(function () { setTimeout(poll, every); });
    }
    setTimeout(poll, every);
  }

  // The console's live view: reloads itself while its checkbox is ticked (the operator can
  // stop it: no time limit the page imposes). The choice is kept for the browser tab.
  function autoRefresh() {
    var box = document.getElementById("auto-refresh");
    if (!box) return;
    var every = 1000 * Number(box.getAttribute("data-refresh-s") || "5");
    var timer = null;
    var holder = box.closest("[hidden]");
    if (holder) holder.hidden = false;
    box.checked = sessionStorage.getItem("aiapi-live-auto") !== "off";
    function arm() {
      clearTimeout(timer);
      if (box.checked) timer = setTimeout(function () { location.reload(); }, every);
    }
    box.addEventListener("change", function () {
      sessionStorage.setItem("aiapi-live-auto", box.checked ? "on" : "off");
      arm();
    });
    arm();
  }

  document.addEventListener("DOMContentLoaded", function () {
    setUpCopyButtons();
    followDeposits();
    autoRefresh();
  });
  window.aiapi = { copyText: copyText };
})();
