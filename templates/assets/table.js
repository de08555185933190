// Progressive enhancement for tables marked "sortable": click a header to
// sort, type in the filter box to narrow the rows. Without JavaScript the
// table is complete and in its published order.
(function () {
  "use strict";
  function cellValue(row, index) {
    var cell = row.cells[index];
    if (!cell) return "";
    var key = cell.getAttribute("data-sort");
    return key !== null ? key : cell.textContent.trim();
  }
  // A number as the pages print it: "1,234", "-0.5", "110 [104–116]", "20 (1 failed)":
  // its number; null for anything else, and for what was not measured ("", "–").
  var NUMBER = /^([-+\u2212]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?)(?:\s*[\[(].*)?$/;
  function numeric(text) {
    var m = NUMBER.exec(text.trim());
    return m ? parseFloat(m[1].replace(/,/g, "").replace("\u2212", "-")) : null;
  }
  function missing(text) {
    var t = text.trim();
    return t === "" || t === "\u2013" || t === "-" || t === "not recorded";
  }
  // Rows without a value go last whichever the direction; numbers sort as numbers.
  function compare(a, b, ascending) {
    var ma = missing(a), mb = missing(b);
    if (ma || mb) return ma === mb ? 0 : (ma ? 1 : -1);
    var x = numeric(a), y = numeric(b);
    var c = x !== null && y !== null ? x - y : a.localeCompare(b);
    return ascending ? c : -c;
  }
  function makeSortable(table) {
    var body = table.tBodies[0];
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "sort";
      if (th.querySelector("a")) {
        // Keep the header's links to definitions: the button sits beside them.
        var label = document.createElement("span");
        label.className = "visually-hidden";
        label.textContent = "Sort by " + th.textContent.trim();
        var mark = document.createElement("span");
        mark.setAttribute("aria-hidden", "true");
        mark.textContent = "\u21c5";
        button.appendChild(mark);
        button.appendChild(label);
        th.appendChild(document.createTextNode(" "));
        th.appendChild(button);
      } else {
        button.textContent = th.textContent;
        th.textContent = "";
        th.appendChild(button);
      }
      button.addEventListener("click", function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(table.tHead.rows[0].cells, function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r1, r2) {
          return compare(cellValue(r1, index), cellValue(r2, index), ascending);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }
  function makeFilterable(table) {
    var tools = document.querySelector(".table-tools");
    var input = document.getElementById("run-filter");
    var count = document.getElementById("run-count");
    if (table.id !== "runs" || !tools || !input) return; // the filter box is the run list's
    tools.hidden = false;
    var body = table.tBodies[0];
    function apply() {
      var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      var shown = 0;
      Array.prototype.forEach.call(body.rows, function (row) {
        var text = row.textContent.toLowerCase();
        var match = words.every(function (w) { return text.indexOf(w) !== -1; });
        row.hidden = !match;
        if (match) shown += 1;
      });
      count.textContent = shown + " of " + body.rows.length + " runs";
    }
    input.addEventListener("input", apply);
    apply();
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    makeSortable(table);
    makeFilterable(table);
  });
})();
