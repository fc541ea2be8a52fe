// The page's theme, set before it is drawn: Airflow's own (the UI that frames this page marks
// its <html> "dark" or "light"), else the visitor's choice on this page, else the system's.
// Kept in sync when Airflow's theme changes; the toggle button stores a choice here.
(function () {
  "use strict";
  var KEY = "intentflow-theme";
  var root = document.documentElement;

  function airflowTheme() {
    try {
      if (window.parent !== window) {
        var html = window.parent.document.documentElement;
        if (html.classList.contains("dark")) return "dark";
        if (html.classList.contains("light")) return "light";
      }
    } catch (e) { /* not framed by Airflow's origin */ }
    return null;
  }

  function chosen() {
    var stored = null;
    try { stored = window.localStorage.getItem(KEY); } catch (e) { /* storage off */ }
    if (stored === "dark" || stored === "light") return stored;
    return null;
  }

  function current() {
    return airflowTheme() || chosen() ||
      (window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
  }

  function apply() {
    var theme = current();
    root.classList.toggle("dark", theme === "dark");
    root.classList.toggle("light", theme !== "dark");
    var button = document.getElementById("theme-toggle");
    if (button) {
      button.setAttribute("aria-pressed", theme === "dark" ? "true" : "false");
      button.textContent = theme === "dark" ? "Light theme" : "Dark theme";
      button.hidden = airflowTheme() !== null; // inside Airflow, its own switch rules
    }
    document.dispatchEvent(new CustomEvent("intentflow-theme", { detail: theme }));
  }

  apply();
  try {
    if (window.parent !== window) {
      new MutationObserver(apply).observe(window.parent.document.documentElement,
        { attributes: true, attributeFilter: ["class"] });
    }
  } catch (e) { /* not framed by Airflow's origin */ }
  document.addEventListener("DOMContentLoaded", function () {
    apply();
    var button = document.getElementById("theme-toggle");
    if (!button) return;
    button.addEventListener("click", function () {
      var next = root.classList.contains("dark") ? "light" : "dark";
      try { window.localStorage.setItem(KEY, next); } catch (e) { /* storage off */ }
      apply();
    });
  });
})();
