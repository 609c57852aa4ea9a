// Live updates: the element with data-live="URL" is replaced by each
// server-sent event from URL. Without JavaScript the page still reads,
// and a refresh link reloads it.
(function () {
  var el = document.querySelector("[data-live]");
  if (!el || !window.EventSource) return;
  var es = new EventSource(el.getAttribute("data-live"));
  es.onmessage = function (e) { el.innerHTML = e.data; };
  es.addEventListener("done", function (e) { el.innerHTML = e.data; es.close(); });
  document.documentElement.classList.add("live");
})();
