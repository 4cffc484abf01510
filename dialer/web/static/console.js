// The operator console: live state and screen pops from the server (Server-Sent Events),
// pause / resume, the disposition form and the "script does not cover this" flag.
// The call card arrives as ready HTML rendered by the server; this script only puts it in place.
(function () {
  "use strict";
  // The page's settings come as a JSON data block (the Content-Security-Policy allows no inline script).
  var configBlock = document.getElementById("console-config");
  var config = configBlock ? JSON.parse(configBlock.textContent) : {};
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var CSRF_TOKEN = csrfMeta ? csrfMeta.content : "";
  var KIND_WORDS = config.kinds || {};
  var STATE_WORDS = config.states || {};
  var call = document.getElementById("call");
  var notice = document.getElementById("notice");
  var stateBadge = document.getElementById("state");
  var pauseButton = document.getElementById("pause-button");
  var pauseReason = document.getElementById("pause-reason");
  var currentAttempt = null;
  var events = null;

  // Screen-pop timings, read by the browser test and the benchmark:
  // event_ms = when the daemon received the AMI event, shown_ms = when the card was on screen (Unix ms).
  window.dialerConsole = {pops: [], state: stateBadge.dataset.state};

  function now() { return performance.timeOrigin + performance.now(); }

  function showNotice(text, kind) {
    notice.textContent = text;
    notice.className = "notice" + (kind ? " " + kind : "");
    notice.hidden = !text;
  }

  function toLogin() { window.location = "/console/login?next=/console"; }

  function postJson(url, body) {
    return fetch(url, {method: "POST", credentials: "same-origin",
                       headers: {"Content-Type": "application/json", "Accept": "application/json",
                                 "X-CSRF-Token": CSRF_TOKEN},
                       body: JSON.stringify(body)})
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          return {status: response.status, ok: response.ok, data: data};
        });
      });
  }

  function errorText(answer) {
    if (answer.status === 401) { return "Сеанс завершён: войдите снова."; }
    if (answer.data && answer.data.message) { return answer.data.message; }  // Russian; `error` is for logs
    if (answer.data && answer.data.error) { return "ошибка " + answer.status; }
    return "ошибка " + answer.status;
  }

  // ---------------------------------------------------------------- state and pause

  function showState(state) {
    window.dialerConsole.state = state;
    stateBadge.dataset.state = state;
    stateBadge.className = "state state-" + state;
    stateBadge.textContent = STATE_WORDS[state] || state;
    var paused = state === "paused";
    pauseButton.dataset.paused = paused ? "true" : "false";
    pauseButton.textContent = paused ? "Продолжить работу" : "Пауза";
  }

  pauseButton.addEventListener("click", function () {
    var pause = pauseButton.dataset.paused !== "true";
    pauseButton.disabled = true;
    postJson("/console/api/pause", {paused: pause, reason: pauseReason.value})
      .then(function (answer) {
        if (answer.status === 401) { toLogin(); return; }
        if (!answer.ok) { showNotice((pause ? "Пауза не включена: " : "Работа не продолжена: ") + errorText(answer)); return; }
        showNotice("");
        if (answer.data.state) { showState(answer.data.state); }
      })
      .catch(function (error) { showNotice("Нет связи с дайлером: " + error.message); })
      .finally(function () { pauseButton.disabled = false; });
  });

  // ---------------------------------------------------------------- the call card

  function showCall(message) {
    if (message.attempt_id === currentAttempt) { return; }   // the same call again (a reconnect)
    currentAttempt = message.attempt_id;
    call.className = "";
    call.innerHTML = message.html;
    bindCard(message.attempt_id);
    var received = now();
    window.requestAnimationFrame(function () {
      window.dialerConsole.pops.push({attempt_id: message.attempt_id, event_ms: message.event_ms,
                                      published_ms: message.published_ms, sent_ms: message.sent_ms,
                                      received_ms: received, shown_ms: now()});
    });
  }

  function bindCard(attemptId) {
    var form = document.getElementById("disposition-form");
    if (form) { bindDisposition(form, attemptId); }
    var gap = document.getElementById("gap-form");
    if (gap) { bindGap(gap, attemptId); }
  }

  function bindDisposition(form, attemptId) {
    var kind = form.querySelector("#kind");
    var error = form.querySelector("#disposition-error");
    kind.addEventListener("change", function () { form.dataset.kind = kind.value; });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      error.hidden = true;
      if (!kind.value) { error.textContent = "Выберите результат разговора."; error.hidden = false; return; }
      var body = {kind: kind.value};
      var comment = form.querySelector("#comment").value.trim();
      if (comment) { body.comment = comment; }
      if (kind.value === "confirmed") {
        body.amount = form.querySelector("#amount").value.trim() || null;
        body.currency = form.querySelector("#currency").value.trim() || null;
      }
      if (kind.value === "callback") { body.callback_at = form.querySelector("#callback-at").value || null; }
      var topic = form.querySelector("#topic");
      if (topic && topic.value) { body.topic = topic.value; }
      var script = document.getElementById("script");
      if (script && script.dataset.script) {
        body.script_id = script.dataset.script;
        body.script_version = script.dataset.version || null;
      }
      var button = form.querySelector("#disposition-submit");
      button.disabled = true;
      postJson("/attempts/" + attemptId + "/disposition", body)
        .then(function (answer) {
          if (answer.status === 401) { toLogin(); return; }
          if (!answer.ok) { error.textContent = "Не записано: " + errorText(answer); error.hidden = false; return; }
          var section = document.getElementById("disposition");
          section.className = "disposition done";
          section.id = "disposition-done";
          var words = KIND_WORDS[answer.data.kind] || answer.data.kind;
          if (answer.data.amount) { words += ", " + answer.data.amount + " " + (answer.data.currency || ""); }
          if (answer.data.callback_at) { words += ", на " + new Date(answer.data.callback_at).toLocaleString("ru-RU"); }
          section.innerHTML = "<h2>Итог записан</h2><p></p>";
          section.querySelector("p").textContent = words;
        })
        .catch(function (e) { error.textContent = "Нет связи с дайлером: " + e.message; error.hidden = false; })
        .finally(function () { button.disabled = false; });
    });
  }

  function bindGap(form, attemptId) {
    var script = document.getElementById("script");
    var result = form.querySelector("#gap-result");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var question = form.querySelector("#gap-question");
      postJson("/console/api/gaps", {attempt_id: attemptId, script_id: script.dataset.script,
                                     version: Number(script.dataset.version), question: question.value})
        .then(function (answer) {
          if (answer.status === 401) { toLogin(); return; }
          if (!answer.ok) { result.className = "error"; result.textContent = "Не отмечено: " + errorText(answer); return; }
          result.className = "muted";
          result.textContent = "Спасибо, вопрос передан руководителю.";
          question.value = "";
        })
        .catch(function (e) { result.className = "error"; result.textContent = "Нет связи с дайлером: " + e.message; });
    });
  }

  // ---------------------------------------------------------------- server push

  function connect() {
    events = new EventSource("/console/events");
    events.addEventListener("open", function () { showNotice(""); });
    events.addEventListener("state", function (e) { showState(JSON.parse(e.data).state); });
    events.addEventListener("call", function (e) { showCall(JSON.parse(e.data)); });
    events.addEventListener("signed_out", function () { events.close(); toLogin(); });
    events.addEventListener("error", function () {
      if (events.readyState !== EventSource.CLOSED) {
        showNotice("Связь с дайлером прервалась; переподключаюсь…");
        return;
      }
      fetch("/console/api/me", {credentials: "same-origin"}).then(function (response) {
        if (response.status === 401) { toLogin(); return; }
        showNotice("Связь с дайлером прервалась; переподключаюсь…");
        window.setTimeout(connect, 2000);
      }).catch(function () { window.setTimeout(connect, 2000); });
    });
  }
  connect();
})();
