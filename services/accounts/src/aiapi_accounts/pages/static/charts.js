// Draws the charts of pages/charts.py with Chart.js (static/vendor, from npm). Each
// canvas[data-chart] names the JSON block beside it: {title, unit, labels, series: [{name,
// colour, values}]}, values as exact decimal strings (shown as they are in the tooltips).
// Without this script (or Chart.js) the canvas stays hidden and the figures table says it all.
"use strict";
(function () {
  if (!window.Chart) return;
  var dark = window.matchMedia("(prefers-color-scheme: dark)");

  function ink() {
    var style = getComputedStyle(document.documentElement);
    return {
      text: style.getPropertyValue("--muted").trim() || "#555",
      grid: style.getPropertyValue("--line").trim() || "#ddd",
    };
  }

  // Axis labels in plain decimals (a day's cost may be millionths of a dollar); the exact
  // values are in the tooltips and the table.
  function axisNumber(value) {
    return Number(value).toLocaleString("en-US", { maximumSignificantDigits: 4 });
  }

  function options(spec) {
    var colours = ink();
    return {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      scales: {
        x: { stacked: true, ticks: { color: colours.text, maxTicksLimit: 8, maxRotation: 0 },
             grid: { display: false } },
        y: { stacked: true, beginAtZero: true, ticks: { color: colours.text, callback: axisNumber },
             grid: { color: colours.grid }, title: { display: true, text: spec.unit, color: colours.text } },
      },
      plugins: {
        legend: { display: false }, // the page's own legend is beside the chart
        tooltip: {
          filter: function (item) { return item.raw !== 0; },
          callbacks: {
            label: function (item) {
              var s = spec.series[item.datasetIndex];
              return s.name + ": " + s.values[item.dataIndex] + " " + spec.unit;
            },
          },
        },
      },
    };
  }

  var charts = [];
  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    var source = document.getElementById(canvas.getAttribute("data-chart"));
    if (!source) return;
    var spec = JSON.parse(source.textContent);
    canvas.parentElement.hidden = false;
    var chart = new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: spec.labels,
        datasets: spec.series.map(function (s) {
          return { label: s.name, backgroundColor: s.colour, data: s.values.map(Number) };
        }),
      },
      options: options(spec),
    });
    charts.push([chart, spec]);
  });

  // Follow the system's colour scheme as the page's stylesheet does.
  dark.addEventListener("change", function () {
    charts.forEach(function (pair) {
      pair[0].options = options(pair[1]);
      pair[0].update();
    });
  });
})();
