/* Doorstep's service worker: the field app opens with no network. The app shell and the day's
 * data (/api/v1/me/zones) are network-first with the last good answer as the fallback; static
 * files are served from the cache and refreshed behind. Nothing is ever written here: the
 * queue lives in the page's IndexedDB and leaves only through POST /api/v1/sync. */
"use strict";
var CACHE = "doorstep-field-v1";
var SHELL = ["/field", "/static/css/app.css", "/static/js/field.js", "/static/favicon.svg", "/manifest.webmanifest"];

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(CACHE).then(function (cache) {
    return Promise.all(SHELL.map(function (url) {
      return fetch(url, { credentials: "same-origin" }).then(function (r) {
        if (r.ok && !r.redirected) { return cache.put(url, r); }
        return null;
      }).catch(function () { return null; });
    }));
  }).then(function () { return self.skipWaiting(); }));
});

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (names) {
    return Promise.all(names.filter(function (n) { return n !== CACHE; }).map(function (n) { return caches.delete(n); }));
  }).then(function () { return self.clients.claim(); }));
});

function networkFirst(request, key) {
  return fetch(request).then(function (response) {
    if (response.ok && !response.redirected) {
      var copy = response.clone();
      caches.open(CACHE).then(function (cache) { cache.put(key, copy); });
    }
    return response;
  }).catch(function () {
    return caches.match(key).then(function (hit) { return hit || Response.error(); });
  });
}

function cacheFirst(request) {
  return caches.match(request).then(function (hit) {
    var refresh = fetch(request).then(function (response) {
      if (response.ok) { var copy = response.clone(); caches.open(CACHE).then(function (c) { c.put(request, copy); }); }
      return response;
    });
    return hit || refresh;
  });
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  var url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) { return; }
  if (url.pathname === "/field" || url.pathname === "/api/v1/me/zones") {
    event.respondWith(networkFirst(request, url.pathname));
  } else if (url.pathname.indexOf("/static/") === 0 || url.pathname.indexOf("/vendor/") === 0 ||
             url.pathname === "/manifest.webmanifest") {
    event.respondWith(cacheFirst(request));
  }
});
