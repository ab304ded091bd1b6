/* The flagged visits of a team day on the folium-built map: each visit's GPS fix (coloured by its
 * flag colour) joined by a line to its building; tapping a table row shows that visit on the map. */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("flags-config").textContent);
  var map = window[config.map];
  var COLOURS = { green: "#1e7b34", amber: "#f0a202", red: "#b3261e" };
  var everything = L.featureGroup().addTo(map);
  var shown = {};

  function label(text) {
    var span = document.createElement("span");
    span.textContent = text;
    return span;
  }

  config.points.forEach(function (p) {
    var colour = COLOURS[p.colour] || COLOURS.red;
    var hasFix = p.lat !== null && p.lon !== null;
    var building = L.circleMarker([p.blat, p.blon], {
      radius: 6, weight: hasFix ? 2 : 3, color: hasFix ? "#1b2430" : colour, fillColor: "#ffffff", fillOpacity: 1
    }).bindTooltip(label(p.address + (hasFix ? "" : " · " + p.label)));
    var parts = [building], target = building;
    if (hasFix) {
      parts.push(L.polyline([[p.blat, p.blon], [p.lat, p.lon]], { color: colour, weight: 3, dashArray: "6 5" }));
      target = L.circleMarker([p.lat, p.lon], {
        radius: 8, weight: 2, color: "#ffffff", fillColor: colour, fillOpacity: 0.95
      }).bindTooltip(label(p.label));
      parts.push(target);
    }
    shown[p.id] = { group: L.featureGroup(parts).addTo(everything), target: target };
  });
  if (everything.getLayers().length) {
    map.fitBounds(everything.getBounds(), { maxZoom: 17, padding: [24, 24] });
  }

  var selected = null;
  function show(row) {
    var entry = shown[row.dataset.visit];
    if (!entry) { return; }
    if (selected) { selected.classList.remove("selected"); }
    selected = row;
    row.classList.add("selected");
    map.fitBounds(entry.group.getBounds(), { maxZoom: 18, padding: [48, 48] });
    entry.target.openTooltip();
    var box = document.getElementById("flags-map");
    if (box.getBoundingClientRect().top < 0) { box.scrollIntoView({ behavior: "smooth", block: "start" }); }
  }
  document.querySelectorAll("tr[data-visit]").forEach(function (row) {
    row.addEventListener("click", function () { show(row); });
    row.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); show(row); }
    });
  });
}());
