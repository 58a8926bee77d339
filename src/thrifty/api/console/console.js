// thrifty console: refresh the page's numbers in place, without reloading it.
// Every data-refresh seconds, fetch this page again as a fragment and swap it into <main>;
// skipped while a form in it has focus, so a reviewer's click is never lost.
(function () {
  "use strict";
  var main = document.getElementById("content");
  if (!main) return;
  var every = parseInt(main.getAttribute("data-refresh"), 10) || 15;
  function refresh() {
    var active = document.activeElement;
    if (active && active !== document.body && main.contains(active)) return;
    fetch(window.location.href, {
      headers: { "x-console-fragment": "1" },
      credentials: "same-origin",
      redirect: "manual",
    })
      .then(function (response) {
        if (response.type === "opaqueredirect" || response.status === 303) {
          window.location.reload(); // the session ended: the server sends the login page
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (body) {
        if (body !== null) {
          main.innerHTML = body;
          main.setAttribute("data-refreshed", new Date().toISOString());
        }
      })
      .catch(function () {}); // a restart or a dropped connection: try again next time
  }
  window.setInterval(refresh, every * 1000);
})();
