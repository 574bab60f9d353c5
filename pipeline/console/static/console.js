// access-watch console: keyboard shortcuts only. Every page and form works without it.
(function () {
  "use strict";
  function typing(ev) {
    var t = ev.target;
    return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
  }
  function go(id) {
    var a = document.getElementById(id);
    if (a && a.href) { window.location.href = a.href; }
  }
  function submit(id) {
    var f = document.getElementById(id);
    var b = f && f.querySelector("button[type=submit]:not([disabled])");
    if (b) { b.click(); }
  }
  var rows = [];
  var current = -1;
  function select(i) {
    if (!rows.length) { return; }
    current = Math.max(0, Math.min(rows.length - 1, i));
    rows.forEach(function (r, j) { r.classList.toggle("selected", j === current); });
    rows[current].scrollIntoView({ block: "nearest" });
  }
  document.addEventListener("DOMContentLoaded", function () {
    rows = Array.prototype.slice.call(document.querySelectorAll("table.queue tbody tr[data-href]"));
    rows.forEach(function (r, i) {
      r.addEventListener("click", function (ev) {
        if (ev.target.closest("a, button, input, form")) { return; }
        window.location.href = r.getAttribute("data-href");
      });
      r.addEventListener("mouseenter", function () { current = i; });
    });
    if (document.body.getAttribute("data-page") === "queue" && rows.length) { select(0); }
    var help = document.getElementById("help");
    Array.prototype.forEach.call(document.querySelectorAll("[data-help]"), function (b) {
      b.addEventListener("click", function () { help.hidden = !help.hidden; });
    });
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    if (ev.key === "Escape") {
      document.getElementById("help").hidden = true;
      if (typing(ev)) { ev.target.blur(); }
      return;
    }
    if (typing(ev)) { return; }
    var page = document.body.getAttribute("data-page");
    switch (ev.key) {
      case "?": var h = document.getElementById("help"); h.hidden = !h.hidden; break;
      case "j": select(current + 1); break;
      case "k": select(current - 1); break;
      case "Enter": case "o":
        if (page === "queue" && current >= 0 && rows[current]) {
          window.location.href = rows[current].getAttribute("data-href");
        } else { return; }
        break;
      case "n": go("next-alert"); break;
      case "p": go("prev-alert"); break;
      case "]": go("next-page"); break;
      case "[": go("prev-page"); break;
      case "u": case "g": go("back-to-queue"); if (page === "queue") { return; } break;
      case "a": submit("assign-me"); break;
      case "c": submit("acknowledge"); break;
      case "v":
        var v = document.getElementById("verdict-first");
        if (v) { v.focus(); v.scrollIntoView({ block: "center" }); }
        break;
      case "/":
        var first = document.getElementById("filter-first");
        if (first) { first.focus(); } else { return; }
        break;
      default: return;
    }
    ev.preventDefault();
  });
})();
