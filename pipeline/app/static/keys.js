// Keyboard help for every page: "?" shows or hides the shortcuts; Escape closes it.
(function () {
  "use strict";
  const help = document.getElementById("shortcuts");
  if (!help) return;
  function toggle(show) { help.hidden = show === undefined ? !help.hidden : !show; }
  window.callqaTyping = function (ev) {
    const t = ev.target;
    return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
  };
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || window.callqaTyping(ev)) return;
    if (ev.key === "?") { toggle(); ev.preventDefault(); }
    else if (ev.key === "Escape") toggle(false);
  });
  help.querySelector("[data-close]").addEventListener("click", function () { toggle(false); });
  document.querySelectorAll("[data-show-shortcuts]").forEach(function (b) {
    b.addEventListener("click", function () { toggle(true); });
  });
})();
