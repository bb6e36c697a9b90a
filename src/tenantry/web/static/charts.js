// Charts of the dashboard: every <canvas data-chart="{labels, datasets, unit}"> becomes a
// Chart.js line or bar chart. The data is written by the server into the attribute (no inline
// script); the chart draws exactly those numbers, and `Chart.getChart(canvas)` reads them back.
"use strict";

(() => {
  // Distinct in light and dark, each readable against both backgrounds.
  const PALETTE = ["#4f6bed", "#e07b00", "#1f9d55", "#c2185b", "#7b5cd6", "#00838f", "#8d6e00", "#d84315"];

  function colours() {
    const style = getComputedStyle(document.body);
    return {
      text: style.getPropertyValue("--muted").trim() || "#555",
      grid: style.getPropertyValue("--border").trim() || "#ddd",
    };
  }

  function draw(canvas) {
    if (!window.Chart || window.Chart.getChart(canvas)) return;
    const spec = JSON.parse(canvas.dataset.chart);
    const { text, grid } = colours();
    const many = spec.labels.length > 48;
    new window.Chart(canvas, {
      type: spec.type || (spec.datasets.length > 1 || many ? "line" : "bar"),
      data: {
        labels: spec.labels,
        datasets: spec.datasets.map((set, i) => ({
          label: set.label,
          data: set.data,
          borderColor: PALETTE[i % PALETTE.length],
          backgroundColor: PALETTE[i % PALETTE.length] + "99",
          pointRadius: many ? 0 : 2,
          tension: 0.2,
          spanGaps: true, // a run with no point at a step: the line goes on to its next one
          // A projection or a limit is dashed; a band fills down to the line before it.
          borderDash: set.dash ? [6, 4] : [],
          fill: set.fill || false,
        })),
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { ticks: { color: text, maxRotation: 0, autoSkip: true }, grid: { color: grid } },
          y: {
            beginAtZero: spec.type !== "line",
            ticks: { color: text },
            grid: { color: grid },
            title: { display: Boolean(spec.unit), text: spec.unit, color: text },
          },
        },
        plugins: { legend: { labels: { color: text } } },
      },
    });
  }

  function drawAll(root) {
    root.querySelectorAll("canvas[data-chart]").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", () => drawAll(document));
  document.addEventListener("htmx:afterSettle", (event) => drawAll(event.detail.elt));
})();
