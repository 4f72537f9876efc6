// Click a figure to see it full size; click anywhere (or press Escape) to close it.
document.addEventListener("click", (event) => {
  const open = document.querySelector("figure.zoomed");
  if (open) { open.classList.remove("zoomed"); return; }
  const image = event.target.closest("figure img");
  if (image) image.closest("figure").classList.add("zoomed");
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") document.querySelector("figure.zoomed")?.classList.remove("zoomed");
});
// Tables with class "sortable": click a column heading to sort by it (numbers by their data-sort value).
document.querySelectorAll("table.sortable thead th").forEach((th) => {
  th.title = "click to sort";
  th.addEventListener("click", () => {
    const body = th.closest("table").tBodies[0];
    const column = Array.from(th.parentNode.children).indexOf(th);
    const ascending = th.dataset.order !== "asc";
    th.parentNode.querySelectorAll("th").forEach((h) => delete h.dataset.order);
    th.dataset.order = ascending ? "asc" : "desc";
    const key = (row) => {
      const cell = row.cells[column];
      const text = cell.dataset.sort ?? cell.textContent.trim();
      const value = parseFloat(text);
      return Number.isNaN(value) ? text : value;
    };
    const compare = (a, b) => (typeof a === "number" && typeof b === "number")
      ? a - b : String(a).localeCompare(String(b));
    Array.from(body.rows).sort((a, b) => compare(key(a), key(b)) * (ascending ? 1 : -1))
      .forEach((row) => body.appendChild(row));
  });
});
