// Call page: seek by utterance, evidence or timeline marker; the playhead follows the audio;
// find in the transcript; keyboard review (Space, j/k, n/p, [/], f/g, c, /).
(function () {
  "use strict";
  const player = document.getElementById("player");
  const utts = Array.from(document.querySelectorAll('[data-testid="utterance"]'));
  const items = Array.from(document.querySelectorAll('[data-testid="item"]'));
  const timeline = document.querySelector('[data-testid="timeline"]');
  const playhead = document.getElementById("playhead");
  const head = document.getElementById("callhead");
  const duration = timeline ? parseFloat(timeline.dataset.duration) || 1 : 1;
  let current = null;   // utterance being played / focused
  let itemAt = -1;      // focused rubric item

  function mark(el) {
    if (current) current.classList.remove("playing");
    current = el;
    if (current) {
      current.classList.add("playing");
      current.scrollIntoView({ block: "nearest" });
    }
  }

  function movePlayhead(t) {
    if (!playhead) return;
    const x = Math.max(0, Math.min(1000, (t / duration) * 1000));
    playhead.setAttribute("x1", x);
    playhead.setAttribute("x2", x);
  }

  function utteranceAt(t) {
    let found = null;
    for (const el of utts) {
      if (t >= parseFloat(el.dataset.start) - 0.05) found = el; else break;
    }
    return found;
  }

  function seek(seconds) {
    if (!Number.isFinite(seconds)) return;
    movePlayhead(seconds);
    if (!player) { mark(utteranceAt(seconds)); return; }
    player.currentTime = seconds;
    const p = player.play();
    if (p && p.catch) p.catch(function () {}); // autoplay policy: seeking still works
  }

  utts.forEach(function (el) {
    el.addEventListener("click", function () { mark(el); seek(parseFloat(el.dataset.start)); });
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

  if (timeline) {
    timeline.querySelectorAll('[data-testid="timeline-marker"], rect.seg').forEach(function (el) {
      function go(ev) { ev.stopPropagation(); seek(parseFloat(el.dataset.start)); }
      el.addEventListener("click", go);
      el.addEventListener("keydown", function (ev) { if (ev.key === "Enter") go(ev); });
    });
    timeline.addEventListener("click", function (ev) {
      const box = timeline.getBoundingClientRect();
      seek(((ev.clientX - box.left) / box.width) * duration);
    });
  }

  function flash(el) {
    el.classList.remove("flash-hl");
    void el.offsetWidth;
    el.classList.add("flash-hl");
  }

  items.forEach(function (item, n) {
    const ids = (item.dataset.utts || "").trim().split(/\s+/).filter(Boolean);
    function show(on) {
      ids.forEach(function (i) { const u = document.getElementById("utt-" + i); if (u) u.classList.toggle("focus", on); });
    }
    item.addEventListener("mouseenter", function () { show(true); });
    item.addEventListener("mouseleave", function () { show(false); });
    item.addEventListener("focus", function () { itemAt = n; });
  });

  if (player) {
    player.addEventListener("timeupdate", function () {
      const t = player.currentTime;
      movePlayhead(t);
      let found = null;
      for (const el of utts) {
        if (t >= parseFloat(el.dataset.start) && t < parseFloat(el.dataset.end)) { found = el; break; }
      }
      if (found && found !== current) mark(found);
    });
  }

  // ---------------------------------------------------------------- find in this call
  const find = document.getElementById("find");
  const count = document.getElementById("find-count");
  let hits = [];
  let hitAt = -1;
  const originals = new Map();

  function clearHits() {
    originals.forEach(function (html, el) { el.innerHTML = html; });
    originals.clear();
    hits = [];
    hitAt = -1;
  }

  function runFind() {
    clearHits();
    const q = (find.value || "").trim().toLowerCase();
    if (!q) { count.textContent = ""; return; }
    utts.forEach(function (u) {
      const box = u.querySelector(".text");
      const text = box.textContent;
      const low = text.toLowerCase();
      let at = low.indexOf(q);
      if (at < 0) return;
      originals.set(box, box.innerHTML);
      box.textContent = "";
      let pos = 0;
      while (at >= 0) {
        box.appendChild(document.createTextNode(text.slice(pos, at)));
        const m = document.createElement("mark");
        m.className = "find-hit";
        m.dataset.testid = "find-hit";
        m.textContent = text.slice(at, at + q.length);
        box.appendChild(m);
        hits.push({ utt: u, mark: m });
        pos = at + q.length;
        at = low.indexOf(q, pos);
      }
      box.appendChild(document.createTextNode(text.slice(pos)));
    });
    count.textContent = hits.length ? "0/" + hits.length : "0";
    if (hits.length) step(1);
  }

  function step(delta) {
    if (!hits.length) return;
    if (hitAt >= 0) hits[hitAt].mark.classList.remove("current");
    hitAt = (hitAt + delta + hits.length) % hits.length;
    const h = hits[hitAt];
    h.mark.classList.add("current");
    h.utt.scrollIntoView({ block: "center" });
    mark(h.utt);
    count.textContent = (hitAt + 1) + "/" + hits.length;
  }

  if (find) {
    find.addEventListener("input", runFind);
    find.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter") { step(ev.shiftKey ? -1 : 1); ev.preventDefault(); }
      else if (ev.key === "Escape") { find.blur(); }
    });
    document.getElementById("find-next").addEventListener("click", function () { step(1); });
    document.getElementById("find-prev").addEventListener("click", function () { step(-1); });
    if (find.value) runFind();
  }

  // ---------------------------------------------------------------- keyboard review
  function moveUtterance(delta) {
    if (!utts.length) return;
    const i = current ? utts.indexOf(current) : -1;
    const next = utts[Math.max(0, Math.min(utts.length - 1, i + delta))];
    mark(next);
    next.focus({ preventScroll: true });
    seek(parseFloat(next.dataset.start));
  }

  function focusItem(delta) {
    if (!items.length) return;
    itemAt = Math.max(0, Math.min(items.length - 1, itemAt + delta));
    items[itemAt].focus();
    items[itemAt].scrollIntoView({ block: "nearest" });
  }

  function verdict(value) {
    if (itemAt < 0) focusItem(1);
    const item = items[itemAt];
    const btn = item && item.querySelector('button[name="verdict"][value="' + value + '"]');
    if (btn) btn.click();
  }

  function go(which) {
    const url = head && head.dataset[which];
    if (url) window.location.href = url;
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || (window.callqaTyping && window.callqaTyping(ev))) return;
    switch (ev.key) {
      case " ":
        if (!player) return;
        if (player.paused) { const p = player.play(); if (p && p.catch) p.catch(function () {}); }
        else player.pause();
        break;
      case "j": moveUtterance(1); break;
      case "k": moveUtterance(-1); break;
      case "n": go("next"); break;
      case "p": go("prev"); break;
      case "]": focusItem(1); break;
      case "[": focusItem(-1); break;
      case "f": verdict("fail"); break;
      case "g": verdict("pass"); break;
      case "c": {
        const form = document.getElementById("confirm-next-form") || document.getElementById("confirm-form");
        if (form) form.submit();
        break;
      }
      case "/": if (find) find.focus(); break;
      default: return;
    }
    ev.preventDefault();
  });
})();
