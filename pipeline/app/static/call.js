// Call page: click an utterance (or a piece of evidence) to play from there; the playing
// utterance is highlighted; hovering an item highlights the utterances it cites.
(function () {
  "use strict";
  const player = document.getElementById("player");
  const utts = Array.from(document.querySelectorAll('[data-testid="utterance"]'));
  if (!player) return;

  function seek(seconds) {
    if (!Number.isFinite(seconds)) return;
    player.currentTime = seconds;
    const p = player.play();
    if (p && p.catch) p.catch(function () {}); // autoplay policy: seeking still works
  }

  utts.forEach(function (el) {
    el.addEventListener("click", function () { seek(parseFloat(el.dataset.start)); });
    el.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter") seek(parseFloat(el.dataset.start));
    });
  });

  document.querySelectorAll(".evidence").forEach(function (btn) {
    btn.addEventListener("click", function () {
      let start = parseFloat(btn.dataset.start);
      const utt = btn.dataset.utt !== "" ? document.getElementById("utt-" + btn.dataset.utt) : null;
      if (utt) {
        utt.scrollIntoView({ block: "center", behavior: "smooth" });
        flash(utt);
        if (!Number.isFinite(start)) start = parseFloat(utt.dataset.start);
      }
      seek(start);
    });
  });

  function flash(el) {
    el.classList.remove("flash-hl");
    void el.offsetWidth;
    el.classList.add("flash-hl");
  }

  document.querySelectorAll('[data-testid="item"]').forEach(function (item) {
    const ids = (item.dataset.utts || "").trim().split(/\s+/).filter(Boolean);
    item.addEventListener("mouseenter", function () {
      ids.forEach(function (i) { const u = document.getElementById("utt-" + i); if (u) u.classList.add("focus"); });
    });
    item.addEventListener("mouseleave", function () {
      ids.forEach(function (i) { const u = document.getElementById("utt-" + i); if (u) u.classList.remove("focus"); });
    });
  });

  let current = null;
  player.addEventListener("timeupdate", function () {
    const t = player.currentTime;
    let found = null;
    for (const el of utts) {
      if (t >= parseFloat(el.dataset.start) && t < parseFloat(el.dataset.end)) { found = el; break; }
    }
    if (found === current) return;
    if (current) current.classList.remove("playing");
    current = found;
    if (current) {
      current.classList.add("playing");
      current.scrollIntoView({ block: "nearest" });
    }
  });
})();
