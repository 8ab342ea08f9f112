// Earnings pages: a form marked data-single-submit submits once. The server's one-time
// claim of the confirmation is what guarantees a single payout; this only spares the
// user a confusing second request. Loaded with the page's CSP nonce; no inline handlers.
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute || !form.hasAttribute("data-single-submit")) return;
    if (form.getAttribute("data-submitted") === "true") {
      event.preventDefault();
      return;
    }
    form.setAttribute("data-submitted", "true");
    form.setAttribute("aria-busy", "true");
    // Disable after this event so the submission itself still goes out.
    setTimeout(function () {
      form.querySelectorAll("button[type=submit], input[type=submit]").forEach(function (button) {
        button.disabled = true;
        var busy = button.getAttribute("data-busy-label");
        if (busy) {
          button.setAttribute("data-idle-label", button.textContent);
          button.textContent = busy;
        }
      });
    }, 0);
  });

  // Back/forward cache: a page restored after submitting must be usable again.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    document.querySelectorAll("form[data-single-submit]").forEach(function (form) {
      form.removeAttribute("data-submitted");
      form.removeAttribute("aria-busy");
      form.querySelectorAll("button[type=submit], input[type=submit]").forEach(function (button) {
        button.disabled = false;
        var idle = button.getAttribute("data-idle-label");
        if (idle) button.textContent = idle;
      });
    });
  });
})();
