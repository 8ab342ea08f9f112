// Small behaviours shared by every page. Loaded with the page's CSP nonce; no inline handlers.
(function () {
  "use strict";

  function toast(text, level) {
    var box = document.getElementById("toasts");
    if (!box || !text) return;
    var el = document.createElement("div");
    el.className = "toast toast-" + (level || "info");
    el.setAttribute("role", "status");
    el.textContent = text;
    box.appendChild(el);
    scheduleHide(el);
  }

  function scheduleHide(el) {
    setTimeout(function () {
      el.classList.add("hide");
      setTimeout(function () { el.remove(); }, 500);
    }, 6000);
  }

  // Copy buttons: <button data-copy-target="#id"> or data-copy-text="...".
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target], [data-copy-text]");
    if (!button) return;
    var text = button.getAttribute("data-copy-text");
    if (text === null) {
      var target = document.querySelector(button.getAttribute("data-copy-target"));
      text = target ? target.textContent.trim() : "";
    }
    if (!navigator.clipboard) { toast("Copying is not available in this browser.", "warning"); return; }
    navigator.clipboard.writeText(text).then(
      function () { toast("Copied to the clipboard.", "success"); },
      function () { toast("Could not copy to the clipboard.", "error"); }
    );
  });

  // Plain forms that ask for confirmation: <form data-confirm="Stop web-1?">.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !form.hasAttribute("hx-post") && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  // Server events: HX-Trigger {"toast": {"text": "...", "level": "success"}}.
  document.body && document.body.addEventListener("toast", function (event) {
    var detail = event.detail || {};
    toast(detail.text || detail.value, detail.level);
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("#toasts .toast").forEach(scheduleHide);
  });

  window.dcdnToast = toast;
})();
