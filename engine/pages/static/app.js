/* examreg pages (candidates, support console): optional enhancements only; every page works without this file.
 * ES5 on purpose (old phone browsers). No inline script anywhere: the CSP forbids it. */
(function () {
  "use strict";
  document.documentElement.className += " js";

  // -- schools filtered by the chosen province ---------------------------------------------
  var reference = null;
  function loadReference() {
    if (!reference) {
      reference = fetch("/api/v1/reference", { credentials: "same-origin" }).then(function (r) {
        if (!r.ok) { throw new Error("reference " + r.status); }
        return r.json();
      });
      reference["catch"](function () { reference = null; });
    }
    return reference;
  }

  function fillSchools(select, province, data) {
    // A school code means another school in another province: start the choice again.
    while (select.options.length) { select.remove(0); }
    var empty = document.createElement("option");
    empty.value = "";
    empty.textContent = select.getAttribute(province ? "data-placeholder" : "data-placeholder-empty");
    select.appendChild(empty);
    data.schools.forEach(function (s) {
      if (s.province_code !== province) { return; }
      var option = document.createElement("option");
      option.value = s.school_code;
      option.textContent = s.school_code + " – " + s.name;
      select.appendChild(option);
    });
  }

  document.addEventListener("change", function (event) {
    var source = event.target;
    var targetId = source && source.getAttribute && source.getAttribute("data-schools-target");
    if (!targetId) { return; }
    var select = document.getElementById(targetId);
    if (!select) { return; }
    select.disabled = true;
    loadReference().then(function (data) {
      fillSchools(select, source.value, data);
      select.disabled = false;
    }, function () {
      // Offline or refused: show the no-JS button that reloads the lists from the server.
      select.disabled = false;
      document.documentElement.className = document.documentElement.className.replace(" js", "");
    });
  });

  // -- receipt: queued -> persisted (or needs attention) without a reload ----------------------
  var status = document.querySelector("[data-receipt-poll]");
  if (status && window.fetch) {
    var url = status.getAttribute("data-receipt-poll");
    var delay = 1000;
    var giveUp = Date.now() + 15 * 60 * 1000;
    var schedule = function () {
      if (Date.now() > giveUp) { return; }
      delay = Math.min(delay * 1.5, 15000);
      window.setTimeout(poll, delay * (0.8 + Math.random() * 0.4));  // jitter: no herd
    };
    var poll = function () {
      fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (data && data.status === "needs_attention") {
            // The writer gave up on it: say so, and keep polling, since a replay stores it.
            status.textContent = status.getAttribute("data-label-needs-attention");
            status.setAttribute("data-status", "needs_attention");
            status.className = "status status-needs_attention";
            var note = document.getElementById("receipt-attention");
            var lang = document.documentElement.getAttribute("lang");
            if (note && data.attention) {
              note.textContent = lang === "en" ? data.attention.message_en : data.attention.message;
              note.hidden = false;
            }
          }
          if (!data || data.status !== "persisted") { schedule(); return; }
          var shown = document.getElementById("receipt-attention");
          if (shown) { shown.hidden = true; }
          status.textContent = status.getAttribute("data-label-persisted");
          status.setAttribute("data-status", "persisted");
          status.className = "status status-persisted";
          var at = document.getElementById("receipt-persisted");
          if (at && data.persisted_at) {
            try {
              at.textContent = new Date(data.persisted_at).toLocaleString("vi-VN", { timeZone: "Asia/Ho_Chi_Minh" }) + " (GMT+7)";
            } catch (e) { /* keep the placeholder */ }
          }
        }, schedule);
    };
    window.setTimeout(poll, delay);
  }

  // -- overload page: count down, then resubmit the same form (same Idempotency-Key) ---------
  var retry = document.getElementById("retry-form");
  if (retry) {
    var seconds = parseInt(retry.getAttribute("data-retry-after"), 10) || 5;
    // The server already spreads Retry-After; a little more here, so no two tabs tick together.
    var left = Math.ceil(seconds * (1 + Math.random() * 0.2));
    var counter = retry.querySelector("[data-countdown]");
    if (counter) { counter.textContent = String(left); }
    var timer = window.setInterval(function () {
      left -= 1;
      if (counter) { counter.textContent = String(Math.max(left, 0)); }
      if (left <= 0) {
        window.clearInterval(timer);
        if (store) { savePending(retry); }
        retry.submit();
      }
    }, 1000);
  }

  // -- a submission whose answer never came (weak connection) -------------------------------
  // Until a page that answers the POST loads, the tab keeps the Idempotency-Key and what was
  // typed. Coming back to the form after a network error then resubmits with the same key, so the
  // server replays the first receipt instead of recording a second version.
  var PENDING = "examreg.pending";
  var store = null;
  try { store = window.sessionStorage; } catch (e) { store = null; }

  function savePending(form) {
    var values = [];
    for (var i = 0; i < form.elements.length; i++) {
      var el = form.elements[i];
      if (!el.name || el.name === "csrf_token" || el.name === "action" || el.type === "file") { continue; }
      if ((el.type === "checkbox" || el.type === "radio") && !el.checked) { continue; }
      values.push([el.name, el.value]);
    }
    var login = form.elements.national_id ? form.elements.national_id.value : "";
    try { store.setItem(PENDING, JSON.stringify({ login: login, values: values })); } catch (e) { /* full */ }
  }

  function restorePending(form) {
    var pending = null;
    try { pending = JSON.parse(store.getItem(PENDING) || "null"); } catch (e) { pending = null; }
    if (!pending || !pending.values) { return; }
    var login = form.elements.national_id ? form.elements.national_id.value : "";
    if (pending.login !== login) { store.removeItem(PENDING); return; }  // another candidate's
    var byName = {};
    pending.values.forEach(function (pair) { (byName[pair[0]] = byName[pair[0]] || []).push(pair[1]); });
    for (var i = 0; i < form.elements.length; i++) {
      var el = form.elements[i];
      if (!el.name || el.name === "csrf_token" || el.name === "national_id" || el.type === "submit" || el.type === "file") { continue; }
      var values = byName[el.name] || [];
      if (el.type === "checkbox" || el.type === "radio") {
        el.checked = values.indexOf(el.value) >= 0;
      } else if (el.tagName === "SELECT") {
        var wanted = values.length ? values[0] : "";
        var found = false;
        for (var j = 0; j < el.options.length; j++) { if (el.options[j].value === wanted) { found = true; } }
        if (!found) {
          var option = document.createElement("option");
          option.value = option.textContent = wanted;
          el.appendChild(option);
        }
        el.value = wanted;
      } else {
        el.value = values.length ? values[0] : "";
      }
    }
    var notice = document.getElementById("pending-notice");
    if (notice) { notice.hidden = false; }
  }

  if (store) {
    var saving = document.querySelectorAll("form[data-pending-save]");
    if (document.body.getAttribute("data-answered")) {
      store.removeItem(PENDING);
    } else if (document.getElementById("registration-form")) {
      restorePending(document.getElementById("registration-form"));
    }
    for (var k = 0; k < saving.length; k++) {
      saving[k].addEventListener("submit", function (event) { savePending(event.target); });
    }
    var leaving = document.querySelectorAll("form[data-clear-pending]");
    for (var m = 0; m < leaving.length; m++) {
      leaving[m].addEventListener("submit", function () { store.removeItem(PENDING); });
    }
  }

  // -- support console: copy the one-time password; focus a reason prompt when it opens -------
  document.addEventListener("click", function (event) {
    var button = event.target;
    var id = button && button.getAttribute && button.getAttribute("data-copy");
    var source = id && document.getElementById(id);
    if (!source || !navigator.clipboard) { return; }
    navigator.clipboard.writeText(source.textContent).then(function () {
      button.textContent = button.getAttribute("data-copied");
    }, function () { /* not allowed: the agent reads it out */ });
  });
  document.addEventListener("toggle", function (event) {
    var details = event.target;
    if (!details.open || !details.classList || !details.classList.contains("prompt")) { return; }
    var reason = details.querySelector("input[name=reason]");
    if (reason) { reason.focus(); }
  }, true);  // "toggle" does not bubble

  // -- print ------------------------------------------------------------------------------------
  document.addEventListener("click", function (event) {
    var el = event.target;
    while (el && el !== document) {
      if (el.hasAttribute && el.hasAttribute("data-print")) { window.print(); return; }
      el = el.parentNode;
    }
  });
  // -- keyed file: the progress bar polls the job until it is finished, then shows the result ----
  // (names of their own: `var` is function-scoped, and the receipt's poll above is `poll`)
  var keyingJob = document.getElementById("keying-job");
  var jobPoll = keyingJob && keyingJob.getAttribute("data-poll");
  if (jobPoll) {
    var jobBar = document.getElementById("job-progress");
    var jobRows = document.getElementById("job-rows");
    var jobTick = function () {
      fetch(jobPoll, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
        if (!r.ok) { throw new Error("progress " + r.status); }
        return r.json();
      }).then(function (p) {
        if (p.finished) { window.location.reload(); return; }
        jobBar.max = p.total || 1;
        jobBar.value = p.processed;
        jobRows.textContent = p.processed + " / " + p.total;
        keyingJob.setAttribute("data-state", p.state);
        window.setTimeout(jobTick, 700);
      })["catch"](function () { window.setTimeout(jobTick, 2000); });
    };
    window.setTimeout(jobTick, 500);
  }
})();
