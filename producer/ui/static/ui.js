// twilio-jobs dashboard: live fragments and confirmations, nothing else.
// An element with data-refresh="<url>" data-every="<ms>" is replaced by that URL's HTML on
// that period (the campaign page's progress); a form with data-confirm asks first.
(function () {
  function refresh(el) {
    var every = parseInt(el.getAttribute("data-every") || "2000", 10);
    function tick() {
      fetch(el.getAttribute("data-refresh"), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) { el.innerHTML = html; } })
        .catch(function () {})
        .then(function () { setTimeout(tick, every); });
    }
    setTimeout(tick, every);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh]").forEach(refresh);
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
  });
})();
