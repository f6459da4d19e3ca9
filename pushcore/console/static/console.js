// The console's own script: charts from <script type="application/json" class="chart-data">
// blocks (uPlot), copy buttons.  Runs again on every part htmx swaps in.
"use strict";

(function () {
  const COLORS = { delivered: "#1a7f37", removed: "#9a6700", failed: "#cf222e" };

  function width(box) {
    return Math.max(240, Math.min(box.parentElement.clientWidth || 600, 960));
  }

  function draw(block) {
    if (block.dataset.drawn || typeof uPlot === "undefined") return;
    block.dataset.drawn = "1";
    const data = JSON.parse(block.textContent);
    const box = block.parentElement.querySelector(".chart-box");
    let opts, rows;
    if (block.dataset.kind === "bars") {
      const names = Object.keys(data.series);
      rows = [data.x, ...names.map((n) => data.series[n])];
      opts = {
        width: width(box), height: 220,
        scales: { x: { time: true } },
        series: [{}, ...names.map((n, i) => ({
          label: n, stroke: COLORS[n], fill: COLORS[n] + "99", width: 1,
          paths: uPlot.paths.bars({ size: [0.25, 40], align: [-1, 0, 1][i] || 0 }),
        }))],
        axes: [{}, { size: 60 }],
      };
    } else {
      rows = [data.x, data.delivered];
      opts = {
        width: width(box), height: 220,
        scales: { x: { time: true } },
        series: [{}, { label: "delivered", stroke: COLORS.delivered, width: 2, fill: "#1a7f3722" }],
        axes: [{}, { size: 70 }],
      };
    }
    new uPlot(opts, rows, box);
  }

  function copy(button) {
    const input = document.getElementById(button.dataset.copy);
    if (!input) return;
    input.select();
    const note = document.getElementById(button.dataset.copy + "-copied");
    const done = () => { button.textContent = "Copied"; if (note) note.textContent = "Copied to the clipboard."; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, () => { button.textContent = "Select and copy"; });
    } else {
      button.textContent = "Selected: press Ctrl+C";
    }
  }

  function init(root) {
    root.querySelectorAll("script.chart-data").forEach(draw);
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-copy]");
    if (button) copy(button);
  });
  document.addEventListener("DOMContentLoaded", () => init(document));
  document.addEventListener("htmx:afterSwap", (event) => init(event.target));
})();
