/* Doorstep maps: polygons and buildings from the app's JSON endpoints, drawn on the folium-built
 * Leaflet map; editors draw and edit polygons with Leaflet.draw and save them through the API.
 * Buildings are circle markers on one canvas renderer, which stays smooth with tens of thousands. */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("map-config").textContent);
  var text = JSON.parse(document.getElementById("map-text").textContent);
  var map = window[config.map];
  var drawn = config.drawn ? window[config.drawn] : null;
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var statusBox = document.getElementById("map-status");
  var STATUS_COLOURS = ["#9aa5b1", "#f0a202", "#1e7b34"];
  var QUEUE_COLOUR = "#b3261e";
  var renderer = L.canvas({ padding: 0.5 });
  var polygonLayer = L.featureGroup().addTo(map);
  var buildingLayer = L.featureGroup().addTo(map);
  var pending = null; // the layer just drawn, waiting for its form
  var fitted = false;

  function fmt(template, values) {
    return template.replace(/%\((\w+)\)s/g, function (_m, key) { return values[key]; });
  }
  function pct(value) { return value === null || value === undefined ? "—" : Math.round(value * 100) + "%"; }
  function esc(value) {
    var div = document.createElement("div");
    div.textContent = value === null || value === undefined ? "" : String(value);
    return div.innerHTML;
  }

  function api(method, url, body) {
    return fetch(url, {
      method: method, credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, "Accept": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) { var err = new Error((data.error && data.error.message) || response.statusText); err.data = data; throw err; }
        return data;
      });
    });
  }

  function select(feature, layer) {
    var p = feature.properties, box = document.getElementById("selected");
    document.getElementById("sel-title").textContent = (p.kind === "zone" ? text.zone : text.territory) + " " + p.name;
    var html = "<p>" + esc(p.kind === "zone" ? text.agent : text.supervisor) + ": " + esc(p.owner || text.nobody) + "</p>";
    if (p.kind === "zone") {
      html += "<p>" + esc(text.buildings) + ": " + (p.buildings || 0) + " · " + esc(text.coverage) + " " + pct(p.coverage) +
        " · " + esc(text.penetration) + " " + pct(p.penetration) + "</p>";
    }
    if (p.kind === "territory" && config.role !== "agent") {
      html += '<p><a class="btn" href="/territories/' + p.id + '">' + esc(text.open) + "</a></p>";
    }
    if (p.editable) {
      html += '<p><button type="button" class="btn danger" id="retire">' + esc(text.retire) + "</button></p>";
    }
    document.getElementById("sel-body").innerHTML = html;
    box.hidden = false;
    var retire = document.getElementById("retire");
    if (retire) {
      retire.addEventListener("click", function () {
        if (!window.confirm(fmt(text.retire_confirm, { name: p.name }))) { return; }
        api("POST", "/api/v1/map/" + (p.kind === "zone" ? "zones" : "territories") + "/" + p.id + "/retire")
          .then(function () { box.hidden = true; reload(true); })
          .catch(function (err) { window.alert(fmt(text.edit_failed, { reason: err.message })); });
      });
    }
  }

  function loadPolygons() {
    return api("GET", config.urls.polygons).then(function (data) {
      polygonLayer.clearLayers();
      if (drawn) { drawn.clearLayers(); }
      var zoneRows = [];
      L.geoJSON(data, {
        style: function (f) {
          var p = f.properties;
          return p.kind === "territory"
            ? { color: p.colour, weight: 3, dashArray: "8 6", fillOpacity: 0.04 }
            : { color: p.colour, weight: 2, fillOpacity: 0.18 };
        },
        onEachFeature: function (feature, layer) {
          layer.on("click", function () { select(feature, layer); });
          layer.bindTooltip(feature.properties.name, { sticky: true });
          var editableHere = feature.properties.editable &&
            ((config.role === "sales_head" && feature.properties.kind === "territory") ||
             (config.role === "supervisor" && feature.properties.kind === "zone"));
          if (drawn && editableHere) { drawn.addLayer(layer); } else { polygonLayer.addLayer(layer); }
          if (feature.properties.kind === "zone") { zoneRows.push(feature.properties); }
        }
      });
      var table = document.querySelector("#zone-table tbody");
      if (table) {
        table.innerHTML = zoneRows.map(function (p) {
          return "<tr><td>" + esc(p.name) + "</td><td>" + esc(p.owner || "—") + '</td><td class="num">' + (p.buildings || 0) +
            '</td><td class="num">' + pct(p.coverage) + '</td><td class="num">' + pct(p.penetration) + "</td></tr>";
        }).join("");
      }
    });
  }

  function loadBuildings() {
    return api("GET", config.urls.buildings).then(function (data) {
      buildingLayer.clearLayers();
      var queueWhenZoneless = config.role === "supervisor";
      var queueWhenHomeless = config.role === "sales_head" || config.role === "finance";
      var markers = [];
      data.rows.forEach(function (r) {
        var colour = STATUS_COLOURS[r[3]];
        if ((queueWhenZoneless && !r[4]) || (queueWhenHomeless && !r[5])) { colour = QUEUE_COLOUR; }
        var marker = L.circleMarker([r[1], r[2]], {
          renderer: renderer, radius: 4, weight: 1, color: "#ffffff", fillColor: colour, fillOpacity: 0.9
        });
        marker.buildingId = r[0];
        markers.push(marker);
      });
      markers.forEach(function (m) { buildingLayer.addLayer(m); });
      statusBox.textContent = fmt(text.loaded, { n: data.rows.length });
      statusBox.dataset.count = String(data.rows.length);
    });
  }
  buildingLayer.on("click", function (e) {
    var id = e.layer.buildingId;
    api("GET", config.urls.building + id).then(function (b) {
      L.popup().setLatLng(e.latlng).setContent(
        "<strong>" + esc(b.address) + "</strong><br>" + b.apartments + " " + esc(text.apartments) + " · " +
        esc(text[b.status] || b.status) + (b.zone ? "<br>" + esc(text.zone) + " " + esc(b.zone) : "")
      ).openOn(map);
    });
  });

  function fit() {
    // the first view shows every polygon the user sees (their buildings when there are none)
    if (fitted) { return; }
    var bounds = L.latLngBounds([]);
    [polygonLayer, drawn].forEach(function (group) {
      if (group && group.getLayers().length) { bounds.extend(group.getBounds()); }
    });
    if (!bounds.isValid() && buildingLayer.getLayers().length) { bounds = buildingLayer.getBounds(); }
    if (bounds.isValid()) { map.fitBounds(bounds, { maxZoom: 17, padding: [8, 8] }); fitted = true; }
  }

  function refreshQueue() {
    // the queue card is rendered by the server: fetch the page again and swap the card in
    var card = document.getElementById("queue");
    if (!card) { return Promise.resolve(); }
    return fetch(window.location.href, { credentials: "same-origin" }).then(function (r) { return r.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("queue");
        if (fresh) { card.innerHTML = fresh.innerHTML; bindQueueLinks(); }
      }).catch(function () {});
  }

  function reload(withQueue) {
    return Promise.all([loadPolygons(), loadBuildings(), withQueue ? refreshQueue() : null]).then(fit)
      .catch(function () { statusBox.textContent = text.failed; });
  }

  // ------------------------------------------------------------- drawing (sales head, supervisor)
  var form = document.getElementById("polygon-form");
  function clearErrors() {
    form.querySelectorAll(".error").forEach(function (el) { el.textContent = ""; });
  }
  function closeForm() {
    if (pending) { drawn.removeLayer(pending); pending = null; }
    form.hidden = true;
    clearErrors();
  }
  if (form && drawn) {
    map.on("draw:created", function (e) {
      if (pending) { drawn.removeLayer(pending); }
      pending = e.layer;
      form.hidden = false;
      clearErrors();
      document.getElementById("pf-name").focus();
      form.scrollIntoView({ behavior: "smooth", block: "nearest" });
    });
    document.getElementById("pf-cancel").addEventListener("click", closeForm);
    form.querySelector("form").addEventListener("submit", function (e) {
      e.preventDefault();
      if (!pending) { return; }
      clearErrors();
      var body = { geometry: pending.toGeoJSON().geometry };
      form.querySelectorAll("input[name], select[name]").forEach(function (el) { body[el.name] = el.value || null; });
      var url = config.role === "sales_head" ? config.urls.territories : config.urls.zones;
      var save = document.getElementById("pf-save");
      save.disabled = true;
      api("POST", url, body).then(function (answer) {
        drawn.removeLayer(pending);
        pending = null;
        form.hidden = true;
        form.querySelector("form").reset();
        statusBox.textContent = fmt(text.saved, { n: answer.buildings });
        statusBox.dataset.saved = answer.name;
        return reload(true).then(function () { statusBox.textContent = fmt(text.saved, { n: answer.buildings }); });
      }).catch(function (err) {
        document.getElementById("pf-error").textContent = err.message;
        var fields = (err.data && err.data.error && err.data.error.fields) || {};
        Object.keys(fields).forEach(function (name) {
          var slot = form.querySelector('.error[data-for="' + name + '"]');
          if (slot) { slot.textContent = fields[name]; }
          else if (fields[name] !== err.message) { document.getElementById("pf-error").textContent += " " + fields[name]; }
        });
      }).then(function () { save.disabled = false; });
    });
    map.on("draw:edited", function (e) {
      var jobs = [];
      e.layers.eachLayer(function (layer) {
        var p = layer.feature && layer.feature.properties;
        if (!p) { return; }
        var url = "/api/v1/map/" + (p.kind === "zone" ? "zones" : "territories") + "/" + p.id;
        jobs.push(api("PUT", url, { geometry: layer.toGeoJSON().geometry }).catch(function (err) {
          window.alert(fmt(text.edit_failed, { reason: err.message + " " +
            Object.values((err.data && err.data.error && err.data.error.fields) || {}).join(" ") }));
        }));
      });
      Promise.all(jobs).then(function () { return reload(true); });
    });
  }

  // ------------------------------------------------------------- the agent's position
  var locate = document.getElementById("locate");
  var me = null;
  function showPosition(pos) {
    var ll = [pos.coords.latitude, pos.coords.longitude];
    if (me) { map.removeLayer(me); }
    me = L.featureGroup([
      L.circle(ll, { radius: pos.coords.accuracy, weight: 1, color: "#1f5f8b", fillOpacity: 0.1 }),
      L.circleMarker(ll, { radius: 7, weight: 3, color: "#ffffff", fillColor: "#1f5f8b", fillOpacity: 1 })
    ]).bindTooltip(text.you).addTo(map);
  }
  if (locate && navigator.geolocation) {
    locate.addEventListener("click", function () {
      navigator.geolocation.getCurrentPosition(function (pos) {
        showPosition(pos);
        map.setView([pos.coords.latitude, pos.coords.longitude], 17);
      }, function () { statusBox.textContent = text.no_position; }, { enableHighAccuracy: true, timeout: 15000 });
    });
    navigator.geolocation.watchPosition(showPosition, function () {}, { enableHighAccuracy: true, maximumAge: 30000 });
  }

  function bindQueueLinks() {
    document.querySelectorAll("[data-building]").forEach(function (link) {
      link.addEventListener("click", function (e) {
        e.preventDefault();
        map.setView([parseFloat(link.dataset.lat), parseFloat(link.dataset.lon)], 18);
        window.scrollTo({ top: 0, behavior: "smooth" });
      });
    });
  }
  bindQueueLinks();

  reload();
}());
