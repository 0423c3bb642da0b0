/* Sortable, searchable tables for the book, written for it (no library, no network).
   Every <table class="helpers-interactive"> gets a search box above it (rows whose text contains
   every typed word stay visible) and clickable column headers (click: ascending, again: descending;
   numbers sort as numbers, text as text). Marked with the class "dataTable" once set up, which the
   browser test checks. */
(function () {
  "use strict";
  function cellValue(row, i) {
    var c = row.cells[i];
    var t = c ? c.textContent.trim() : "";
    var k = t.replace(/[,\u2009]/g, "").replace(/^([<>≤≥])\s*/, "");
    var f = parseFloat(k);
    return isNaN(f) || !/^[-+]?(\d|\.\d)/.test(k) ? { num: false, v: t.toLowerCase() } : { num: true, v: f };
  }
  function compare(a, b) {
    if (a.num && b.num) return a.v - b.v;
    if (a.num !== b.num) return a.num ? -1 : 1;
    return a.v < b.v ? -1 : a.v > b.v ? 1 : 0;
  }
  function setup(table) {
    if (table.classList.contains("dataTable")) return;
    var body = table.tBodies[0];
    if (!body) return;
    var rows = Array.prototype.slice.call(body.rows);
    var box = document.createElement("input");
    box.type = "search";
    box.className = "helpers-table-search";
    box.placeholder = "Search " + rows.length + " rows";
    box.setAttribute("aria-label", "Search the table below");
    var count = document.createElement("span");
    count.className = "helpers-table-count";
    var bar = document.createElement("div");
    bar.className = "helpers-table-bar";
    bar.appendChild(box);
    bar.appendChild(count);
    table.parentNode.insertBefore(bar, table);
    box.addEventListener("input", function () {
      var words = box.value.toLowerCase().split(/\s+/).filter(Boolean);
      var shown = 0;
      rows.forEach(function (r) {
        var text = r.textContent.toLowerCase();
        var ok = words.every(function (w) { return text.indexOf(w) >= 0; });
        r.style.display = ok ? "" : "none";
        if (ok) shown += 1;
      });
      count.textContent = words.length ? shown + " of " + rows.length + " rows" : "";
    });
    var head = table.tHead ? table.tHead.rows[table.tHead.rows.length - 1] : null;
    if (!head) { table.classList.add("dataTable"); return; }
    Array.prototype.forEach.call(head.cells, function (th, i) {
      th.classList.add("helpers-sortable");
      th.setAttribute("tabindex", "0");
      th.setAttribute("aria-sort", "none");
      function sort() {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(head.cells, function (o) { o.setAttribute("aria-sort", "none"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var keyed = rows.map(function (r, j) { return { r: r, k: cellValue(r, i), j: j }; });
        keyed.sort(function (a, b) { return (asc ? 1 : -1) * compare(a.k, b.k) || a.j - b.j; });
        keyed.forEach(function (x) { body.appendChild(x.r); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); } });
    });
    table.classList.add("dataTable");
  }
  function all() { document.querySelectorAll("table.helpers-interactive").forEach(setup); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", all); else all();
})();
