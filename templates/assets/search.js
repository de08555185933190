// Site search through Pagefind, from the search box in every page's header
// (templates/_search.html). The build writes the index as several bundles
// (pagefind/bundles.json lists them, see sitegen/search.py): the first one's
// pagefind.js is loaded and the others are merged into it, so one query
// searches them all.
// Progressive enhancement: the box ships hidden. Served over http, this script
// shows it; from file:// (where the browser refuses to fetch the index) it
// shows a note on how to serve the site instead; without JavaScript a
// <noscript> note says the same.
(function () {
  "use strict";
  var box = document.querySelector(".site-search");
  if (!box) return;
  var form = document.getElementById("search-form");
  var input = document.getElementById("search-input");
  var status = document.getElementById("search-status");
  var list = document.getElementById("search-results");
  var more = document.getElementById("search-more");
  var note = document.getElementById("search-note");
  // Relative path from this page to the site's root ("", "../", "../../"), or
  // the base URL's path on the 404 page, which is served at any depth.
  var root = box.getAttribute("data-root") || "";
  if (location.protocol === "file:") {
    note.hidden = false;
    return;
  }
  form.hidden = false;
  var PAGE = 20; // results shown at once; "Show more results" adds as many again
  var engine = null;
  function bundleUrl(name) {
    return new URL(root + "pagefind/" + name, document.baseURI).href;
  }
  // Result URLs are made site-relative ("/runs/x/index.html") whatever path the
  // site is served under: Pagefind's default would prefix the bundle's own path.
  var OPTIONS = { baseUrl: "/", excerptLength: 24 };
  function merge(pagefind, names) {
    return Promise.all(names.map(function (name) {
      return pagefind.mergeIndex(bundleUrl(name), { baseUrl: "/" });
    })).then(function () { return pagefind; });
  }
  function load() {
    if (!engine) {
      engine = fetch(bundleUrl("bundles.json")).then(function (response) {
        if (!response.ok) throw new Error("no search index (" + response.status + ")");
        return response.json();
      }).then(function (manifest) {
        var names = manifest.bundles || [];
        if (!names.length) return null;
        return import(bundleUrl(names[0] + "pagefind.js")).then(function (pagefind) {
          return pagefind.options(OPTIONS).then(function () {
            return merge(pagefind, names.slice(1));
          });
        });
      });
      engine.catch(function () { engine = null; });
    }
    return engine;
  }
  // "/runs/x/index.html#a" -> root + "runs/x/index.html#a": pages link relatively,
  // so the link works at any depth and under any base path.
  function localHref(url) {
    var hash = url.indexOf("#");
    var fragment = hash < 0 ? "" : url.slice(hash);
    var path = (hash < 0 ? url : url.slice(0, hash)).replace(/^\/+/, "");
    if (path === "" || path.slice(-1) === "/") path += "index.html";
    return root + path + fragment;
  }
  // Excerpts are text with <mark> around the hits: copy text and marks only.
  function appendExcerpt(parent, excerpt) {
    var doc = new DOMParser().parseFromString(excerpt, "text/html");
    doc.body.childNodes.forEach(function (node) {
      if (node.nodeName === "MARK") {
        var mark = document.createElement("mark");
        mark.textContent = node.textContent;
        parent.appendChild(mark);
      } else {
        parent.appendChild(document.createTextNode(node.textContent));
      }
    });
  }
  function item(data) {
    var li = document.createElement("li");
    var link = document.createElement("a");
    link.href = localHref(data.url);
    link.textContent = (data.meta && data.meta.title) || data.url;
    li.appendChild(link);
    if (data.meta && data.meta.kind && data.meta.kind !== "page") {
      var kind = document.createElement("span");
      kind.className = "kind";
      kind.textContent = data.meta.kind;
      li.appendChild(document.createTextNode(" "));
      li.appendChild(kind);
    }
    var excerpt = document.createElement("p");
    appendExcerpt(excerpt, data.excerpt || "");
    li.appendChild(excerpt);
    var sections = sectionsOf(data);
    if (sections.length) {
      var within = document.createElement("ul");
      within.className = "search-sections";
      within.setAttribute("aria-label", "Sections of " + link.textContent);
      sections.forEach(function (section) {
        var entry = document.createElement("li");
        var to = document.createElement("a");
        to.href = localHref(section.url);
        to.textContent = section.title;
        entry.appendChild(to);
        within.appendChild(entry);
      });
      li.appendChild(within);
    }
    return li;
  }
  // The headed sections of a page that hold the most hits (at most 3, in page
  // order): a long page (the methodology) is entered where the answer is.
  function sectionsOf(data) {
    var found = (data.sub_results || []).filter(function (sub) {
      return sub.url && sub.url.indexOf("#") > 0 && sub.title && sub.locations && sub.locations.length;
    });
    var best = found.slice().sort(function (a, b) {
      return b.locations.length - a.locations.length;
    }).slice(0, 3);
    return found.filter(function (sub) { return best.indexOf(sub) >= 0; });
  }
  var latest = 0; // the newest query: answers to older ones are dropped
  var current = { results: [], shown: 0, query: "" };
  function describe() {
    var n = current.results.length, q = "“" + current.query + "”";
    if (!n) return "No results for " + q;
    var text = n + " result" + (n === 1 ? "" : "s") + " for " + q;
    return current.shown < n ? text + ", showing the first " + current.shown : text;
  }
  function clear() {
    ++latest;
    current = { results: [], shown: 0, query: "" };
    list.textContent = "";
    list.hidden = true;
    more.hidden = true;
    status.textContent = "";
  }
  // Show the next PAGE results of the current query (their data is fetched now).
  function showMore(ticket, focusFirst) {
    var start = current.shown;
    var slice = current.results.slice(start, start + PAGE);
    more.disabled = true;
    return Promise.all(slice.map(function (r) { return r.data(); })).then(function (pages) {
      if (ticket !== latest) return;
      pages.forEach(function (data) { list.appendChild(item(data)); });
      current.shown = start + pages.length;
      list.hidden = current.shown === 0;
      more.hidden = current.shown >= current.results.length;
      more.disabled = false;
      status.textContent = describe();
      if (focusFirst && list.children[start]) list.children[start].querySelector("a").focus();
    });
  }
  function fail(ticket, error) {
    if (ticket !== latest) return;
    more.hidden = true;
    status.textContent = "Search is unavailable: " + error.message;
  }
  function run(query) {
    clear();
    if (!query.trim()) return;
    var ticket = latest;
    status.textContent = "Searching…";
    load().then(function (pagefind) {
      return pagefind ? pagefind.search(query) : { results: [] };
    }).then(function (search) {
      if (ticket !== latest) return;
      current = { results: search.results, shown: 0, query: query };
      if (!search.results.length) { status.textContent = describe(); return; }
      return showMore(ticket, false);
    }).catch(function (error) { fail(ticket, error); });
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    run(input.value);
  });
  var timer = null;
  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () { run(input.value); }, 200);
  });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && input.value) {
      event.preventDefault();
      clearTimeout(timer);
      input.value = "";
      clear();
    }
  });
  more.addEventListener("click", function () {
    var ticket = latest;
    showMore(ticket, true).catch(function (error) { fail(ticket, error); });
  });
  var initial = new URLSearchParams(location.search).get("q");
  if (initial) { input.value = initial; run(initial); }
})();
