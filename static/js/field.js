/* Doorstep in the field: today's zones, the door grid, one- or two-tap outcomes, the contract form,
 * and an offline queue. Everything the agent logs goes first into IndexedDB with its client id and
 * leaves only when the server has answered for it (created, duplicate or rejected), so reloads,
 * browser restarts and dead stairwells lose nothing and a retry never duplicates. */
(function () {
  "use strict";
  var cfg = JSON.parse(document.getElementById("field-config").textContent);
  var T = JSON.parse(document.getElementById("field-text").textContent);
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var LOCKING = { already_subscriber: 1, do_not_knock: 1 };
  var FINAL = { signed: 1, already_subscriber: 1, do_not_knock: 1, refused: 1, not_interested: 1 };
  var NEEDS = { callback: "callback", lead: "lead", competitor: "competitor" };
  // the most frequent first: a not_home is one tap without scrolling
  var ORDER = ["not_home", "no_access", "refused", "not_interested", "callback", "lead", "competitor",
    "already_subscriber", "do_not_knock", "signed"];
  var data = null, position = null, current = null, syncing = false;

  function $(id) { return document.getElementById(id); }
  function fmt(s, v) { return s.replace(/%\((\w+)\)s/g, function (_m, k) { return v[k]; }); }
  function esc(v) { var d = document.createElement("div"); d.textContent = v == null ? "" : String(v); return d.innerHTML; }
  function localTime(iso) {
    return new Date(iso).toLocaleString(document.documentElement.lang || undefined,
      { timeZone: cfg.timezone, day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
  }
  var moneyFormat = new Intl.NumberFormat(document.documentElement.lang || undefined,
    { style: "currency", currency: cfg.currency });
  function money(minor) { return moneyFormat.format(minor / 100); }
  function uuid() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    var b = crypto.getRandomValues(new Uint8Array(16)); b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  // ------------------------------------------------------------------ IndexedDB: the queue and the day's data
  var dbPromise = new Promise(function (resolve, reject) {
    var open = indexedDB.open("doorstep-" + cfg.agent, 1);
    open.onupgradeneeded = function () {
      open.result.createObjectStore("queue", { keyPath: "client_id" });
      open.result.createObjectStore("cache", { keyPath: "key" });
    };
    open.onsuccess = function () { resolve(open.result); };
    open.onerror = function () { reject(open.error); };
  });
  function store(name, mode, work) {
    return dbPromise.then(function (db) {
      return new Promise(function (resolve, reject) {
        var t = db.transaction(name, mode), s = t.objectStore(name), result;
        var req = work(s);
        if (req) { req.onsuccess = function () { result = req.result; }; }
        t.oncomplete = function () { resolve(result); };
        t.onerror = function () { reject(t.error); };
      });
    });
  }
  var queue = {
    all: function () { return store("queue", "readonly", function (s) { return s.getAll(); }); },
    put: function (item) { return store("queue", "readwrite", function (s) { return s.put(item); }); },
    remove: function (id) { return store("queue", "readwrite", function (s) { return s.delete(id); }); }
  };

  // ------------------------------------------------------------------ loading the day
  function load() {
    return fetch(cfg.zones, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (fresh) {
        data = fresh;
        $("day-status").textContent = "";
        return store("cache", "readwrite", function (s) { return s.put({ key: "day", data: fresh, saved: new Date().toISOString() }); });
      })
      .catch(function () {
        return store("cache", "readonly", function (s) { return s.get("day"); }).then(function (saved) {
          if (!saved) { $("day-status").textContent = T.load_failed; return; }
          data = saved.data;
          $("day-status").textContent = fmt(T.cached, { t: localTime(saved.saved) });
        });
      })
      .then(function () { return queue.all(); })
      .then(function (items) { items.forEach(function (i) { if (i.state === "pending") { apply(i); } }); render(); });
  }

  function building(id) {
    var found = null;
    (data ? data.zones : []).forEach(function (z) { z.buildings.forEach(function (b) { if (b.id === id) { found = b; } }); });
    return found;
  }
  function apply(item) {
    // what the agent just logged shows at once, before the server has it
    var b = building(item.building_id);
    if (!b) { return; }
    var door = b.flats[String(item.flat)] || {};
    door.outcome = item.type === "contract" ? "signed" : item.outcome;
    door.at = item.at;
    door.locked = !!LOCKING[door.outcome];
    door.pending = true;
    b.flats[String(item.flat)] = door;
  }
  function workLeft(b) {
    var done = 0;
    Object.keys(b.flats).forEach(function (k) { if (FINAL[b.flats[k].outcome] || b.flats[k].locked) { done += 1; } });
    return b.apartments - done;
  }
  function distance(b) {
    if (!position) { return null; }
    var r = 6371008.8, p1 = position.lat * Math.PI / 180, p2 = b.lat * Math.PI / 180;
    var dp = p2 - p1, dl = (b.lon - position.lon) * Math.PI / 180;
    var a = Math.sin(dp / 2) * Math.sin(dp / 2) + Math.cos(p1) * Math.cos(p2) * Math.sin(dl / 2) * Math.sin(dl / 2);
    return 2 * r * Math.asin(Math.min(1, Math.sqrt(a)));
  }

  // ------------------------------------------------------------------ views
  function show(view) {
    ["view-day", "view-building", "view-contract"].forEach(function (v) { $(v).hidden = v !== view; });
    window.scrollTo(0, 0);
  }
  function render() {
    if (!data) { return; }
    var route = window.location.hash.match(/^#b(\d+)$/);
    if (route && building(parseInt(route[1], 10))) { renderBuilding(building(parseInt(route[1], 10))); return; }
    renderDay();
  }
  function renderDay() {
    show("view-day");
    var all = [];
    data.zones.forEach(function (z) { z.buildings.forEach(function (b) { all.push(b); }); });
    if (!all.length && !$("day-status").textContent) { $("day-status").textContent = T.no_zones; }
    all.sort(function (a, b) {
      var da = distance(a), db = distance(b);
      if (da !== null && db !== null && Math.abs(da - db) > 50) { return da - db; }
      return workLeft(b) - workLeft(a);
    });
    $("buildings").innerHTML = all.map(function (b) {
      var d = distance(b);
      return '<li><a href="#b' + b.id + '" class="rowlink"><strong>' + esc(b.address) + "</strong><span class=\"muted\">" +
        fmt(T.flats, { n: b.apartments }) + " · " + fmt(T.left, { n: workLeft(b) }) +
        (d !== null ? " · " + Math.round(d) + " " + T.m : "") + "</span></a></li>";
    }).join("");
    var revisits = (data.revisits || []).filter(function (r) { return building(r.building_id); });
    $("revisits-box").hidden = !revisits.length;
    $("revisits-count").textContent = revisits.length;
    $("revisits").innerHTML = revisits.slice(0, 8).map(function (r) {
      var when = r.outcome === "callback" ? fmt(T.due, { t: localTime(r.callback_at) })
        : fmt(T.tried, { t: T[r.tried] || r.tried });
      return '<li><a href="#b' + r.building_id + '" class="rowlink"><strong>' + esc(r.address) + ", " +
        esc(fmt(T.flat, { n: r.flat })) + '</strong><span class="muted">' + esc(when) + "</span></a></li>";
    }).join("");
    var leads = data.leads || [];
    $("leads-box").hidden = !leads.length;
    $("leads-count").textContent = leads.length;
    $("leads").innerHTML = leads.slice(0, 8).map(function (l) {
      return '<li><a href="#b' + l.building_id + '" class="rowlink"><strong>' + esc(l.address) + ", " +
        esc(fmt(T.flat, { n: l.flat })) + '</strong><span class="muted">' + esc(l.phone || "") + " " + esc(l.note || "") + "</span></a></li>";
    }).join("");
  }
  function renderBuilding(b) {
    current = { building: b };
    show("view-building");
    $("b-title").textContent = b.address;
    $("b-facts").textContent = fmt(T.flats, { n: b.apartments }) + " · " + fmt(T.left, { n: workLeft(b) });
    var html = "";
    b.grid.forEach(function (floors, e) {
      html += '<section class="entrance"><h2>' + esc(fmt(T.entrance, { n: e + 1 })) + "</h2>";
      for (var f = floors.length - 1; f >= 0; f -= 1) {  // top floor first, as the building stands
        html += '<div class="floor"><span class="floorno">' + (floors.length > 1 ? f + 1 : "") + "</span>";
        floors[f].forEach(function (flat) {
          var door = b.flats[String(flat)] || {};
          var cls = "door" + (door.outcome ? " o-" + door.outcome : "") + (door.locked ? " locked" : "") + (door.pending ? " pending" : "");
          var label = door.outcome ? T.outcomes[door.outcome] : "";
          html += '<button type="button" class="' + cls + '" data-flat="' + flat + '"' + (door.locked ? " disabled" : "") +
            ' title="' + esc(label + (door.locked ? " · " + T.locked : "")) + '">' + flat + "</button>";
        });
        html += "</div>";
      }
      html += "</section>";
    });
    $("grid").innerHTML = html;
  }
  $("grid").addEventListener("click", function (e) {
    var btn = e.target.closest("button[data-flat]");
    if (btn && !btn.disabled) { openSheet(parseInt(btn.dataset.flat, 10)); }
  });
  $("back").addEventListener("click", function (e) { e.preventDefault(); window.location.hash = ""; renderDay(); });
  window.addEventListener("hashchange", render);

  // ------------------------------------------------------------------ logging an outcome: one tap, two with a field
  function openSheet(flat) {
    current.flat = flat;
    current.outcome = null;
    $("sheet-title").textContent = fmt(T.flat, { n: flat });
    $("outcomes").innerHTML = ORDER.map(function (o) {
      return '<button type="button" class="btn outcome o-' + o + '" data-outcome="' + o + '">' + esc(T.outcomes[o]) + "</button>";
    }).join("");
    $("extra").hidden = true;
    $("sheet").hidden = false;
  }
  function closeSheet() { $("sheet").hidden = true; }
  $("sheet-close").addEventListener("click", closeSheet);
  $("outcomes").addEventListener("click", function (e) {
    var btn = e.target.closest("button[data-outcome]");
    if (!btn) { return; }
    var outcome = btn.dataset.outcome;
    current.outcome = outcome;
    if (outcome === "signed") { closeSheet(); openContract(); return; }
    if (NEEDS[outcome]) {
      $("extra").hidden = false;
      $("extra-error").textContent = "";
      document.querySelectorAll("#extra [data-for]").forEach(function (el) { el.hidden = el.dataset.for !== NEEDS[outcome]; });
      var input = document.querySelector('#extra [data-for="' + NEEDS[outcome] + '"] input');
      if (input) { input.focus(); }
      return;
    }
    logVisit({});
  });
  $("extra-save").addEventListener("click", function () {
    var extra = {}, need = NEEDS[current.outcome];
    if (need === "callback") {
      if (!$("f-callback").value) { $("extra-error").textContent = T.need_callback; return; }
      extra.callback_at = new Date($("f-callback").value).toISOString();
    } else if (need === "lead") {
      if (!$("f-phone").value.trim()) { $("extra-error").textContent = T.need_phone; return; }
      extra.phone = $("f-phone").value.trim();
    } else if (need === "competitor") {
      if (!$("f-competitor").value.trim()) { $("extra-error").textContent = T.need_competitor; return; }
      extra.competitor = $("f-competitor").value.trim();
    }
    if ($("f-note").value.trim()) { extra.note = $("f-note").value.trim(); }
    ["f-callback", "f-phone", "f-competitor", "f-note"].forEach(function (id) { $(id).value = ""; });
    logVisit(extra);
  });
  function gps() {
    return position ? { lat: position.lat, lon: position.lon, accuracy: position.accuracy } : null;
  }
  function enqueue(item) {
    item.state = "pending";
    apply(item);
    return queue.put(item).then(function () { render(); counter(); sync(); });
  }
  function logVisit(extra) {
    var item = { type: "visit", client_id: uuid(), building_id: current.building.id, flat: current.flat,
      outcome: current.outcome, at: new Date().toISOString(), gps: gps() };
    Object.keys(extra).forEach(function (k) { item[k] = extra[k]; });
    closeSheet();
    enqueue(item);
  }

  // ------------------------------------------------------------------ the contract form
  function openContract() {
    var offer = data.offer || { tariffs: [], addons: [] };
    var door = current.building.flats[String(current.flat)] || {};
    $("c-where").textContent = current.building.address + ", " + fmt(T.flat, { n: current.flat });
    $("c-error").textContent = door.contract ? fmt(T.taken, { n: door.contract }) : (offer.tariffs.length ? "" : T.no_offer);
    $("c-tariff").innerHTML = offer.tariffs.map(function (t) {
      return '<option value="' + esc(t.code) + '">' + esc(t.name) + " · " + money(t.monthly_fee) + "</option>";
    }).join("");
    $("c-addons").innerHTML = offer.addons.map(function (a) {
      return '<li><input type="checkbox" id="a-' + esc(a.code) + '" value="' + esc(a.code) + '"> <label for="a-' + esc(a.code) +
        '">' + esc(a.name) + " · " + money(a.monthly_fee) + "</label></li>";
    }).join("");
    ["c-name", "c-phone"].forEach(function (id) { $(id).value = ""; });
    $("c-adult").checked = false;
    price();
    show("view-contract");
  }
  function chosen() {
    var offer = data.offer, tariff = null, addons = [];
    offer.tariffs.forEach(function (t) { if (t.code === $("c-tariff").value) { tariff = t; } });
    offer.addons.forEach(function (a) { if ($("a-" + a.code) && $("a-" + a.code).checked) { addons.push(a); } });
    return { tariff: tariff, addons: addons };
  }
  function price() {
    var c = chosen(), fee = 0, earn = 0;
    [c.tariff].concat(c.addons).forEach(function (x) { if (x) { fee += x.monthly_fee; earn += x.commission; } });
    $("c-price").textContent = money(fee);
    $("c-commission").textContent = money(earn);
  }
  $("c-tariff").addEventListener("change", price);
  $("c-addons").addEventListener("change", price);
  $("c-cancel").addEventListener("click", function () { renderBuilding(current.building); });
  $("contract-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var c = chosen(), name = $("c-name").value.trim(), phone = $("c-phone").value.trim();
    if (!name) { $("c-error").textContent = T.need_name; return; }
    if (!phone) { $("c-error").textContent = T.need_phone; return; }
    if (!$("c-adult").checked) { $("c-error").textContent = T.need_adult; return; }
    if (!c.tariff) { $("c-error").textContent = T.no_offer; return; }
    enqueue({ type: "contract", client_id: uuid(), building_id: current.building.id, flat: current.flat,
      subscriber: { name: name, phone: phone }, tariff: c.tariff.code,
      addons: c.addons.map(function (a) { return a.code; }), adult_confirmed: true,
      at: new Date().toISOString(), gps: gps() }).then(function () { renderBuilding(current.building); });
  });

  // ------------------------------------------------------------------ the queue: counter, rejections, sync
  function counter() {
    return queue.all().then(function (items) {
      var pending = items.filter(function (i) { return i.state === "pending"; });
      var rejected = items.filter(function (i) { return i.state === "rejected"; });
      $("waiting").textContent = pending.length ? fmt(T.waiting, { n: pending.length }) : T.all_sent;
      $("waiting").dataset.count = String(pending.length);
      $("rejected").hidden = !rejected.length;
      $("rejected-list").innerHTML = rejected.map(function (i) {
        var b = building(i.building_id);
        return '<li data-client="' + esc(i.client_id) + '"><strong>' + esc((b ? b.address + ", " : "") + fmt(T.flat, { n: i.flat })) +
          "</strong> · " + esc(i.type === "contract" ? T.outcomes.signed : T.outcomes[i.outcome]) + "<br><span class=\"error\">" +
          esc(i.error && i.error.message) + '</span> <button type="button" class="btn" data-dismiss="' + esc(i.client_id) + '">OK</button></li>';
      }).join("");
    });
  }
  $("rejected-list").addEventListener("click", function (e) {
    var btn = e.target.closest("button[data-dismiss]");
    if (btn) { queue.remove(btn.dataset.dismiss).then(counter); }
  });
  var again = false;
  function sync() {
    if (!navigator.onLine) { return Promise.resolve(); }
    if (syncing) { again = true; return Promise.resolve(); }  // sent as soon as the running send ends
    syncing = true;
    again = false;
    var sent = [];
    return queue.all().then(function (items) {
      sent = items.filter(function (i) { return i.state === "pending"; }).slice(0, 100);
      if (!sent.length) { return null; }
      var body = { items: sent.map(function (i) { var c = Object.assign({}, i); delete c.state; delete c.error; return c; }) };
      return fetch(cfg.sync, { method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" },
        body: JSON.stringify(body) }).then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); });
    }).then(function (answer) {
      if (!answer) { return null; }
      var jobs = answer.results.map(function (res, k) {
        var item = sent[k];
        if (res.status === "rejected") {
          item.state = "rejected";
          item.error = res.error;
          return queue.put(item);
        }
        return queue.remove(item.client_id);
      });
      return Promise.all(jobs).then(function () { return answer.results.length === 100 ? "more" : "done"; });
    }).catch(function () { return null; }).then(function (state) {
      syncing = false;
      return counter().then(function () {
        if (state === "more" || again) { return sync(); }
        if (state === "done") { return load(); }  // the server's view of the doors, rejections undone
        return null;
      });
    });
  }
  $("sync-now").addEventListener("click", sync);
  function network() {
    $("net").textContent = navigator.onLine ? T.online : T.offline;
    $("net").className = "badge" + (navigator.onLine ? "" : " off");
    if (navigator.onLine) { sync(); }
  }
  window.addEventListener("online", network);
  window.addEventListener("offline", network);
  setInterval(sync, 30000);

  if (navigator.geolocation) {
    navigator.geolocation.watchPosition(function (p) {
      position = { lat: p.coords.latitude, lon: p.coords.longitude, accuracy: p.coords.accuracy };
    }, function () {}, { enableHighAccuracy: true, maximumAge: 30000 });
  }
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(function () {});
  }
  network();
  load().then(counter).then(sync);
}());
