// Site search through Pagefind (pagefind/pagefind.js, written by the build).
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
    status.textContent = "Search works when the site is served over http (for example with `sitegen serve`). The filter of the run table below works here.";
    return;
  }
  var engine = null;
  function load() {
    if (!engine) {
      var url = new URL(root + "pagefind/pagefind.js", document.baseURI).href;
      engine = import(url).then(function (pagefind) {
        return pagefind.options({ excerptLength: 24 }).then(function () { return pagefind; });
      });
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
      return pagefind.search(query);
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
