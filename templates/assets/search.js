// Site search through Pagefind. The build writes the index as several bundles
// (pagefind/bundles.json lists them, see sitegen/search.py): the first one's
// pagefind.js is loaded and the others are merged into it, so one query
// searches them all.
// Progressive enhancement: the search box stays hidden without JavaScript,
// and from file:// (where the browser refuses to fetch the index) the page
// says so; the run table's filter works everywhere.
(function () {
  "use strict";
  var section = document.querySelector("section.search");
  if (!section) return;
  var form = document.getElementById("search-form");
  var input = document.getElementById("search-input");
  var status = document.getElementById("search-status");
  var list = document.getElementById("search-results");
  var root = section.getAttribute("data-root") || "";
  section.hidden = false;
  if (location.protocol === "file:") {
    form.hidden = true;
    status.textContent = "Search needs the site served over http: run `sitegen serve` in the archive, or `python3 -m http.server` in site/, and open the address it prints. The filter of the run table below works here.";
    return;
  }
  var engine = null;
  function bundleUrl(name) {
    return new URL(root + "pagefind/" + name, document.baseURI).href;
  }
  function merge(pagefind, names) {
    return Promise.all(names.map(function (name) {
      return pagefind.mergeIndex(bundleUrl(name));
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
          return pagefind.options({ excerptLength: 24 }).then(function () {
            return merge(pagefind, names.slice(1));
          });
        });
      });
      engine.catch(function () { engine = null; });
    }
    return engine;
  }
  // Pagefind gives site-absolute URLs ("/runs/x/index.html"); pages link relatively.
  function localHref(url) {
    var path = url.replace(/^\/+/, "");
    if (path === "" || path.slice(-1) === "/") path += "index.html";
    return root + path;
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
  var latest = 0;
  function run(query) {
    var ticket = ++latest;
    list.textContent = "";
    if (!query.trim()) { status.textContent = ""; return; }
    status.textContent = "Searching…";
    load().then(function (pagefind) {
      return pagefind ? pagefind.search(query) : { results: [] };
    }).then(function (search) {
      return Promise.all(search.results.slice(0, 20).map(function (r) { return r.data(); }));
    }).then(function (results) {
      if (ticket !== latest) return;
      status.textContent = results.length ? results.length + " result" + (results.length === 1 ? "" : "s") + " for “" + query + "”" : "No results for “" + query + "”";
      results.forEach(function (data) {
        var item = document.createElement("li");
        var link = document.createElement("a");
        link.href = localHref(data.url);
        link.textContent = (data.meta && data.meta.title) || data.url;
        item.appendChild(link);
        if (data.meta && data.meta.kind) {
          var kind = document.createElement("span");
          kind.className = "kind";
          kind.textContent = data.meta.kind;
          item.appendChild(document.createTextNode(" "));
          item.appendChild(kind);
        }
        var excerpt = document.createElement("p");
        appendExcerpt(excerpt, data.excerpt || "");
        item.appendChild(excerpt);
        list.appendChild(item);
      });
    }).catch(function (error) {
      if (ticket !== latest) return;
      status.textContent = "Search is unavailable: " + error.message;
    });
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
  var initial = new URLSearchParams(location.search).get("q");
  if (initial) { input.value = initial; run(initial); }
})();
