// The policy form's condition builder: "Add a condition" and "Remove" change the rows in place
// (without script they post the form, which comes back with the rows changed), and each row's
// operators are narrowed to those its field's type takes, from the catalog the page carries.
"use strict";

(() => {
  const list = () => document.getElementById("conditions");

  const typesOf = (element, name) => {
    try { return JSON.parse(element.dataset[name] || "{}"); } catch (_) { return {}; }
  };

  // Ids, labels and the remove button's value follow the row's place.
  const renumber = (rows) => {
    rows.querySelectorAll("li[data-row]").forEach((row, index) => {
      const n = index + 1;
      for (const part of ["field", "operator", "value"]) {
        const control = row.querySelector(`[data-part='${part}']`);
        const label = row.querySelector(`label[for='${control.id}']`);
        control.id = `cond-${part}-${n}`;
        if (label) {
          label.htmlFor = control.id;
          label.textContent = `${part.charAt(0).toUpperCase()}${part.slice(1)} ${n}`;
        }
      }
      const remove = row.querySelector("[data-remove]");
      remove.value = String(index);
      remove.textContent = `Remove condition ${n}`;
    });
  };

  const narrow = (rows, row) => {
    const fields = typesOf(rows, "fieldTypes");
    const operators = typesOf(rows, "operatorTypes");
    const kind = fields[row.querySelector("[data-part='field']").value];
    const select = row.querySelector("[data-part='operator']");
    for (const option of select.options) {
      option.disabled = Boolean(kind) && !(operators[option.value] || []).includes(kind);
    }
    if (select.selectedOptions[0] && select.selectedOptions[0].disabled) {
      const first = Array.from(select.options).find((o) => !o.disabled);
      if (first) select.value = first.value;
    }
  };

  const blank = (row) => {
    row.classList.remove("has-error");
    row.querySelectorAll(".error").forEach((e) => e.remove());
    row.querySelectorAll("[aria-invalid]").forEach((e) => {
      e.removeAttribute("aria-invalid");
      e.removeAttribute("aria-describedby");
    });
    row.querySelector("[data-part='field']").value = "";
    row.querySelector("[data-part='operator']").selectedIndex = 0;
    row.querySelector("[data-part='value']").value = "";
  };

  document.addEventListener("click", (event) => {
    const rows = list();
    if (!rows) return;
    const target = event.target.closest("button");
    if (!target) return;
    if (target.id === "add-row") {
      event.preventDefault();
      const last = rows.querySelector("li[data-row]:last-of-type");
      const row = last.cloneNode(true);
      blank(row);
      rows.appendChild(row);
      renumber(rows);
      narrow(rows, row);
      row.querySelector("[data-part='field']").focus();
    } else if (target.hasAttribute("data-remove") && rows.contains(target)) {
      event.preventDefault();
      const row = target.closest("li[data-row]");
      if (rows.querySelectorAll("li[data-row]").length > 1) {
        row.remove();
      } else {
        blank(row);
      }
      renumber(rows);
      document.getElementById("add-row").focus();
    }
  });

  document.addEventListener("change", (event) => {
    const rows = list();
    if (rows && event.target.matches("[data-part='field']") && rows.contains(event.target)) {
      narrow(rows, event.target.closest("li[data-row]"));
    }
  });

  document.addEventListener("DOMContentLoaded", () => {
    const rows = list();
    if (rows) rows.querySelectorAll("li[data-row]").forEach((row) => narrow(rows, row));
  });
})();
