// The team-lead page: the tables are rendered by the server; refresh them every two seconds.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var updated = document.getElementById("updated");
  var notice = document.getElementById("notice");

  function refresh() {
    fetch("/console/teamlead/live", {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (response) {
        if (response.status === 401) { window.location = "/console/login?next=/console/teamlead"; return null; }
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        if (html === null) { return; }
        live.innerHTML = html;
        var at = document.getElementById("live-at");   // the dialer's time in the center's zone
        updated.textContent = at ? at.textContent : "";
        notice.hidden = true;
      })
      .catch(function (error) {
        notice.textContent = "Нет связи с дайлером (" + error.message + "); повторяю…";
        notice.hidden = false;
      })
      .finally(function () { window.setTimeout(refresh, 2000); });
  }
  window.setTimeout(refresh, 2000);
})();
