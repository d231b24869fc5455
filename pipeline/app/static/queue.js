// Queue: tick all rows for bulk confirmation; j/k move between rows, Enter opens one.
(function () {
  "use strict";
  const all = document.querySelector("[data-check-all]");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll('input[name="call_id"]:not(:disabled)').forEach(function (b) { b.checked = all.checked; });
    });
  }
  const rows = Array.from(document.querySelectorAll('[data-testid="call-row"]'));
  let at = -1;
  function focus(i) {
    if (!rows.length) return;
    at = Math.max(0, Math.min(rows.length - 1, i));
    rows.forEach(function (r, n) { r.classList.toggle("kbd", n === at); });
    rows[at].scrollIntoView({ block: "nearest" });
  }
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || (window.callqaTyping && window.callqaTyping(ev))) return;
    if (ev.key === "j") focus(at + 1);
    else if (ev.key === "k") focus(at - 1);
    else if ((ev.key === "Enter" || ev.key === "n") && rows.length) {
      window.location.href = rows[at < 0 ? 0 : at].dataset.href;
    } else return;
    ev.preventDefault();
  });
})();
