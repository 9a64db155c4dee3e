// Progressive enhancement of the dashboard's request page: without JavaScript the page is whole
// and has a "Refresh" link; with it, the parts marked data-live are fetched again every 5 s and
// replaced in place, with a button to pause (WCAG 2.2.2) and a polite status of the last update.
(function () {
  "use strict";
  var live = document.querySelectorAll("[data-live]");
  var controls = document.getElementById("live-controls");
  if (!live.length || !controls || !window.fetch || !window.DOMParser) { return; }
  var paused = false;
  var button = document.createElement("button");
  button.type = "button";
  var status = document.createElement("span");
  status.setAttribute("role", "status");
  status.setAttribute("aria-live", "polite");
  function label() { button.textContent = paused ? controls.dataset.resume : controls.dataset.pause; }
  button.addEventListener("click", function () { paused = !paused; label(); });
  label();
  controls.appendChild(button);
  controls.appendChild(document.createTextNode(" "));
  controls.appendChild(status);
  controls.hidden = false;
  function update() {
    if (paused) { return; }
    fetch(window.location.href, {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        live.forEach(function (part) {
          var next = fresh.getElementById(part.id);
          if (next && next.innerHTML !== part.innerHTML) { part.innerHTML = next.innerHTML; }
        });
        status.textContent = controls.dataset.updated + " " + new Date().toLocaleTimeString();
      })
      .catch(function () { status.textContent = controls.dataset.failed; });
  }
  window.setInterval(update, 5000);
}());
