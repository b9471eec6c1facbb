// Keyboard shortcuts for the review page. No inline script anywhere: this file is the only
// behaviour besides htmx, and it reads the DOM at each key press (htmx swaps the body).
(function () {
  "use strict";

  function typing(el) {
    return el && (el.tagName === "TEXTAREA" || el.tagName === "SELECT" ||
      (el.tagName === "INPUT" && !["radio", "checkbox", "button", "submit"].includes(el.type)));
  }

  function submit(form) {
    if (form) { form.requestSubmit(); }
  }

  function rows() { return Array.from(document.querySelectorAll("tr.case-row")); }

  function select(delta) {
    const all = rows();
    if (!all.length) { return; }
    let i = all.findIndex(function (r) { return r.classList.contains("selected"); });
    if (i >= 0) { all[i].classList.remove("selected"); }
    i = Math.max(0, Math.min(all.length - 1, i + delta));
    all[i].classList.add("selected");
    all[i].scrollIntoView({block: "nearest"});
  }

  document.addEventListener("keydown", function (ev) {
    const target = ev.target;
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      const form = document.getElementById("decide-form");
      if (form) { ev.preventDefault(); submit(form); }
      return;
    }
    if (ev.key === "Escape" && typing(target)) { target.blur(); return; }
    if (typing(target) || ev.ctrlKey || ev.metaKey || ev.altKey) { return; }
    const key = ev.key;
    if (key === "?") {
      const help = document.getElementById("shortcuts");
      if (help) { help.hidden = !help.hidden; }
    } else if (key === "j") { select(1); }
    else if (key === "k") { select(-1); }
    else if (key === "Enter") {
      const row = document.querySelector("tr.case-row.selected a.case-link");
      if (row) { ev.preventDefault(); row.click(); }
    } else if (key === "c") { submit(document.getElementById("claim-form")); }
    else if (key === "u") { submit(document.getElementById("release-form")); }
    else if (key === "g") {
      const home = document.querySelector("a.brand");
      if (home) { home.click(); }
    } else if (key === "e") {
      const edit = document.getElementById("choice-edit");
      if (edit) { ev.preventDefault(); edit.checked = true; document.getElementById("edited-text").focus(); }
    } else if (key === "r") {
      const r = document.getElementById("rationale");
      if (r) { ev.preventDefault(); r.focus(); }
    } else if (/^[1-9]$/.test(key)) {
      const radio = document.querySelector('#decide-form input[data-key="' + key + '"]');
      if (radio) { radio.checked = true; radio.focus(); }
    }
  });

  document.addEventListener("click", function (ev) {
    if (ev.target && ev.target.id === "help-toggle") {
      const help = document.getElementById("shortcuts");
      if (help) { help.hidden = !help.hidden; }
    }
  });
})();
