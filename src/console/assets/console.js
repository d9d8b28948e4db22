// eventbus console: the live parts of the overview. The page is complete
// without this script; it only keeps the numbers current from the
// server's event stream (/console/events/overview, one JSON every 2 s).
(function () {
  "use strict";
  var table = document.getElementById("topics");
  if (!table || !window.EventSource) {
    return;
  }
  var live = document.getElementById("live");
  var source = new EventSource("/console/events/overview");

  function set(row, field, value) {
    var cell = row.querySelector('[data-field="' + field + '"]');
    if (cell && cell.textContent !== String(value)) {
      cell.textContent = value;
    }
  }

  function byKey(rows, attr) {
    var out = {};
    for (var i = 0; i < rows.length; i++) {
      out[rows[i].getAttribute(attr)] = rows[i];
    }
    return out;
  }

  source.addEventListener("overview", function (e) {
    var snap;
    try {
      snap = JSON.parse(e.data);
    } catch (err) {
      return;
    }
    var topics = byKey(table.querySelectorAll("tr[data-topic]"), "data-topic");
    var unknown = 0;
    snap.topics.forEach(function (t) {
      var row = topics[t.name];
      if (!row) {
        unknown++;
        return;
      }
      set(row, "events", t.events);
      set(row, "rate", t.rate);
      set(row, "bytes", t.bytes);
      set(row, "retention", t.retention);
      set(row, "schema", t.schema);
      set(row, "subscribers", t.subscribers);
      var path = row.querySelector(".spark path");
      if (path) {
        path.setAttribute("d", t.path);
      }
    });
    var managed = byKey(document.querySelectorAll("tr[data-managed]"), "data-managed");
    snap.managed.forEach(function (m) {
      var row = managed[m.id];
      if (!row) {
        unknown++;
        return;
      }
      var state = row.querySelector('[data-field="state"]');
      if (state) {
        state.textContent = m.state;
        state.className = "state-" + m.state;
      }
      set(row, "lag", m.lag);
      set(row, "active", m.active ? "yes" : "no");
    });
    var uptime = document.getElementById("uptime");
    if (uptime) {
      uptime.textContent = snap.uptime;
    }
    if (live) {
      live.className = "live on";
      live.textContent = unknown > 0 ? "live (new items: reload the page)" : "live";
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
