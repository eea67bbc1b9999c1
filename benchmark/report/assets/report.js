// Sorts a table by the clicked header: cells with a numeric key in data-sort by number, other cells by
// their text (natural order: "x2" before "x10"), empty cells last; a second click reverses.
(function () {
  "use strict";
  function key(cell) {
    if (cell.hasAttribute("data-sort")) { return Number(cell.getAttribute("data-sort")); }
    var text = cell.textContent.trim();
    return text === "" ? null : text;
  }
  function compare(a, b) {
    if (typeof a === "number" && typeof b === "number") { return a - b; }
    return String(a).localeCompare(String(b), undefined, {numeric: true});
  }
  function sortBy(table, header, column) {
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r, s) {
      var a = key(r.cells[column]), b = key(s.cells[column]);
      if (a === null || b === null) { return (a === null) - (b === null); }
      return ascending ? compare(a, b) : compare(b, a);
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header, column) {
      header.tabIndex = 0;
      header.title = "sort by this column";
      header.addEventListener("click", function () { sortBy(table, header, column); });
      header.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortBy(table, header, column); }
      });
    });
  });
}());
// Shows, per dataset, the metric chosen in its selector (the headline metric first).
(function () {
  "use strict";
  document.querySelectorAll("select.metric-choice").forEach(function (select) {
    var answer = select.closest("div.answer");
    select.addEventListener("change", function () {
      answer.querySelectorAll("div.view").forEach(function (view) {
        view.hidden = view.getAttribute("data-view") !== select.value;
      });
    });
  });
}());
