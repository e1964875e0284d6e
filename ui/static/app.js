// Live updates: the server sends an event whenever a machine changes; pages that show
// machines reload their content without a full navigation.
(function () {
  var live = document.querySelector("[data-live]");
  if (live && window.EventSource) startLive(live);
  function startLive(live) {
  var es = new EventSource("/ui/events");
  var pending = null;
  es.addEventListener("machine", function (ev) {
    var want = live.getAttribute("data-live");
    if (want !== "*" && want !== ev.data) return;
    if (pending) return;
    // Never replace a list the technician is selecting in or typing into: ticks and
    // typed text would be lost.
    var act = document.activeElement;
    if (live.querySelector("input[name=id]:checked") || (act && act.matches("input,select,textarea"))) return;
    pending = setTimeout(function () {
      pending = null;
      fetch(window.location.href, { headers: { "X-Partial": "1" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (!html) return;
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.querySelector("[data-live]");
          if (fresh) live.innerHTML = fresh.innerHTML;
        });
    }, 250);
  });
  }
  // Row clicks open the machine page (links stay real links for keyboards).
  document.addEventListener("click", function (e) {
    var tr = e.target.closest("tr[data-href]");
    if (tr && !e.target.closest("a,button,input,label")) window.location = tr.getAttribute("data-href");
  });
  // Typed confirmations: a button stays disabled until the field matches.
  document.querySelectorAll("[data-confirm-for]").forEach(function (inp) {
    var btn = document.getElementById(inp.getAttribute("data-confirm-for"));
    var want = inp.getAttribute("data-confirm-value");
    var sync = function () { btn.disabled = inp.value !== want; };
    inp.addEventListener("input", sync); sync();
  });
})();
