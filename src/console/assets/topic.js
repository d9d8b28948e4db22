// eventbus console: the topic page's live tail. The page is complete
// without this script; it adds the newest events from the server's event
// stream (/console/events/tail, at most one batch a second) and keeps at
// most KEEP of them on the page.
(function () {
  "use strict";
  var main = document.getElementById("topic-page");
  var list = document.getElementById("tail");
  if (!main || !list || !window.EventSource) {
    return;
  }
  var KEEP = 50;
  var live = document.getElementById("tail-live");
  var empty = document.getElementById("tail-empty");
  var latest = document.getElementById("fact-latest");
  var name = main.getAttribute("data-topic");
  var source = new EventSource("/console/events/tail?name=" + encodeURIComponent(name));

  function text(tag, cls, value) {
    var el = document.createElement(tag);
    if (cls) {
      el.className = cls;
    }
    el.textContent = value;
    return el;
  }

  function item(e) {
    var li = document.createElement("li");
    li.setAttribute("data-replay-id", e.replay_id);
    var details = document.createElement("details");
    var summary = document.createElement("summary");
    summary.appendChild(text("span", "id", e.replay_id));
    summary.appendChild(document.createTextNode(" "));
    summary.appendChild(text("span", "time", e.time));
    summary.appendChild(document.createTextNode(" "));
    summary.appendChild(text("code", "", e.summary));
    details.appendChild(summary);
    details.appendChild(text("p", "meta", "schema " + e.schema + " · event id " + e.event_id));
    details.appendChild(text("pre", "", e.json));
    li.appendChild(details);
    return li;
  }

  source.addEventListener("tail", function (msg) {
    var batch;
    try {
      batch = JSON.parse(msg.data);
    } catch (err) {
      return;
    }
    if (batch.skipped > 0) {
      var gap = text("li", "skipped", batch.skipped + " more events arrived; the newest are shown");
      list.insertBefore(gap, list.firstChild);
    }
    batch.events.forEach(function (e) {
      list.insertBefore(item(e), list.firstChild);
    });
    while (list.children.length > KEEP) {
      list.removeChild(list.lastChild);
    }
    if (empty && list.children.length > 0) {
      empty.hidden = true;
    }
    if (latest) {
      latest.textContent = batch.latest;
    }
    if (live) {
      live.className = "live on";
      live.textContent = "live";
    }
  });
  source.addEventListener("error", function () {
    if (live) {
      live.className = "live";
      live.textContent = "reconnecting";
    }
  });
  window.addEventListener("pagehide", function () {
    source.close();
  });
})();
