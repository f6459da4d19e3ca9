// The console's own script: charts from <script type="application/json" class="chart-data">
// blocks (uPlot), copy buttons.  Runs again on every part htmx swaps in.
"use strict";

(function () {
  const COLORS = { delivered: "#1a7f37", "removed or failed": "#cf222e" };
  const DAY = 86400;
  // counts start at 0 (uPlot fits the axis to the data otherwise)
  const FROM_ZERO = { range: (u, min, max) => [0, Math.max(1, max)] };
  // the server's days and times are UTC; so are the charts' axes
  const UTC = (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");

  function dayLabels(narrow) {
    return (u, splits) => splits.map((s) => {
      const d = new Date(s * 1000);
      return narrow ? String(d.getUTCDate())
        : d.toLocaleDateString("en", { month: "short", day: "numeric", timeZone: "UTC" });
    });
  }

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
      // one bar per series and day, side by side (left of the day's tick, right of it)
      const first = data.x[0], last = data.x[data.x.length - 1];
      const w = width(box);
      opts = {
        width: w, height: 220, tzDate: UTC,
        scales: { x: { time: true, range: () => [first - DAY / 2, last + DAY / 2] }, y: FROM_ZERO },
        series: [{}, ...names.map((n, i) => ({
          label: n, stroke: COLORS[n], fill: COLORS[n] + "cc", width: 1,
          paths: uPlot.paths.bars({ size: [0.35, 60], align: i === 0 ? -1 : 1 }),
          points: { show: false },
        }))],
        axes: [{ space: 20, incrs: [DAY], values: dayLabels(w < 480) }, { size: 50 }],
      };
    } else {
      rows = [data.x, data.delivered];
      opts = {
        width: width(box), height: 220, tzDate: UTC,
        scales: { x: { time: true }, y: FROM_ZERO },
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
