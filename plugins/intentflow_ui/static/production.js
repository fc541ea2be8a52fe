// The production section's charts (Chart.js, vendored): traffic, confidence per day, the
// label mix against the training data, the chosen day's confidence histogram against
// training's, and the agents' feedback. Data comes from the page's
// <script type="application/json" id="production-data"> (the server's JSON, never code);
// every chart's numbers are also a table on the page.
(function () {
  "use strict";
  var node = document.getElementById("production-data");
  var form = document.getElementById("production-day-form");
  var select = document.getElementById("production-day-select");
  // Choosing a day shows it (the button stays for keyboards and pages without JavaScript).
  if (form && select) select.addEventListener("change", function () { form.submit(); });
  if (!node || typeof Chart === "undefined") return;
  var data = JSON.parse(node.textContent);
  var charts = {};

  // The same formats as the server's (plugins/intentflow_ui/fmt.py).
  function format(kind, x) {
    if (x === null || x === undefined) return "n/a";
    switch (kind) {
      case "count": return Math.round(x).toLocaleString("en");
      case "rate": return (100 * x).toFixed(1) + "%";
      default: return x.toFixed(3);
    }
  }
  // Axis ticks: whole percentages, one decimal for confidence.
  function tick(kind) {
    return function (v) { return kind === "rate" ? Math.round(100 * v) + "%" : kind === "count" ? format("count", v) : v.toFixed(1); };
  }
  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }
  var STATUS = { ok: "no drift", drift: "drift", no_data: "no data" };

  function axes(y, extra) {
    var grid = css("--border"), fg = css("--fg-muted");
    var scales = {
      x: { grid: { color: grid }, ticks: { color: fg, maxRotation: 0, autoSkip: true, maxTicksLimit: 8 } },
      y: Object.assign({ grid: { color: grid }, ticks: { color: fg, maxTicksLimit: 6 } }, y)
    };
    return Object.assign(scales, extra || {});
  }

  function draw(id, config) {
    var canvas = document.getElementById(id);
    if (!canvas) return;
    if (charts[id]) charts[id].destroy();
    config.options = Object.assign({
      responsive: true, maintainAspectRatio: false, animation: false,
      interaction: { mode: "index", intersect: false }
    }, config.options);
    charts[id] = new Chart(canvas, config);
    canvas.dataset.drawn = "true";
  }

  function legend() {
    return { display: true, labels: { color: css("--fg"), boxWidth: 12 } };
  }

  function traffic() {
    var accent = css("--accent");
    draw("traffic-chart", {
      type: "bar",
      data: { labels: data.days, datasets: [{ label: "predictions", data: data.predictions, backgroundColor: accent }] },
      options: {
        scales: axes({ beginAtZero: true, ticks: { color: css("--fg-muted"), callback: tick("count") } }),
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: {
            label: function (i) { return "predictions: " + format("count", i.raw); },
            afterLabel: function (i) {
              var v = data.versions[i.dataIndex];
              return (v ? "v" + v + " \u00b7 " : "") + STATUS[data.statuses[i.dataIndex]];
            }
          } }
        }
      }
    });
  }

  function confidence() {
    var c = data.confidence, accent = css("--accent"), band = css("--series-8");
    draw("confidence-chart", {
      type: "line",
      data: {
        labels: data.days,
        datasets: [
          { label: "p10", data: c.p10, borderColor: band, backgroundColor: band, borderWidth: 1, pointRadius: 0, fill: false },
          { label: "p90", data: c.p90, borderColor: band, backgroundColor: "transparent", borderWidth: 1, pointRadius: 0, fill: { target: 0, above: css("--bg-muted"), below: css("--bg-muted") } },
          { label: "mean", data: c.mean, borderColor: accent, backgroundColor: accent, borderWidth: 2, pointRadius: 2 }
        ]
      },
      options: {
        spanGaps: false,
        scales: axes({ min: 0, max: 1, ticks: { color: css("--fg-muted"), callback: tick("score") } }),
        plugins: {
          legend: legend(),
          tooltip: { callbacks: { label: function (i) { return i.dataset.label + ": " + format("confidence", i.raw); } } }
        }
      }
    });
  }

  function mix() {
    var m = data.mix;
    draw("mix-chart", {
      type: "bar",
      data: {
        labels: m.bars,
        datasets: m.series.map(function (s, k) {
          var colour = css("--series-" + (s.label === "other labels" ? 8 : 1 + (k % 7)));
          return { label: s.label, data: s.values, backgroundColor: colour, borderColor: css("--bg"), borderWidth: 1 };
        })
      },
      options: {
        scales: axes(
          { stacked: true, min: 0, max: 1, ticks: { color: css("--fg-muted"), callback: tick("rate") } },
          { x: { stacked: true, grid: { color: css("--border") }, ticks: { color: css("--fg-muted"), maxRotation: 0, autoSkip: true, maxTicksLimit: 10 } } }
        ),
        plugins: {
          legend: legend(),
          tooltip: { callbacks: { label: function (i) { return i.dataset.label + ": " + format("rate", i.raw); } } }
        }
      }
    });
  }

  function shares(counts) {
    var total = (counts || []).reduce(function (a, b) { return a + b; }, 0);
    return (counts || []).map(function (n) { return total ? n / total : null; });
  }

  function histogram() {
    var h = data.histogram;
    if (!h.day_counts) return;
    var bins = h.day_counts.map(function (_, k) { return (k / 10).toFixed(1) + "\u2013" + ((k + 1) / 10).toFixed(1); });
    var datasets = [{ label: h.day, data: shares(h.day_counts), backgroundColor: css("--accent") }];
    if (h.reference_counts) {
      datasets.unshift({ label: "training" + (h.reference_version ? " v" + h.reference_version : ""), data: shares(h.reference_counts), backgroundColor: css("--series-8") });
    }
    draw("histogram-chart", {
      type: "bar",
      data: { labels: bins, datasets: datasets },
      options: {
        scales: axes({ beginAtZero: true, ticks: { color: css("--fg-muted"), callback: tick("rate") } }),
        plugins: {
          legend: legend(),
          tooltip: { callbacks: {
            title: function (items) { return "confidence " + items[0].label; },
            label: function (i) { return i.dataset.label + ": " + format("rate", i.raw); }
          } }
        }
      }
    });
  }

  function feedback() {
    var f = data.feedback;
    if (!f.days.length) return;
    draw("feedback-chart", {
      data: {
        labels: f.days,
        datasets: [
          { type: "line", label: "agreement rate", data: f.agreement_rate, yAxisID: "rate", borderColor: css("--better"), backgroundColor: css("--better"), pointRadius: 3 },
          { type: "bar", label: "corrections", data: f.corrections, yAxisID: "y", backgroundColor: css("--accent") },
          { type: "bar", label: "predictions reviewed", data: f.predictions_reviewed, yAxisID: "y", backgroundColor: css("--series-8") }
        ]
      },
      options: {
        scales: axes(
          { beginAtZero: true, position: "left", ticks: { color: css("--fg-muted"), callback: tick("count") } },
          { rate: { position: "right", min: 0, max: 1, grid: { drawOnChartArea: false }, ticks: { color: css("--fg-muted"), callback: tick("rate") } } }
        ),
        plugins: {
          legend: legend(),
          tooltip: { callbacks: { label: function (i) {
            return i.dataset.label + ": " + format(i.dataset.yAxisID === "rate" ? "rate" : "count", i.raw);
          } } }
        }
      }
    });
  }

  function all() {
    traffic();
    confidence();
    mix();
    histogram();
    feedback();
  }
  document.addEventListener("intentflow-theme", all);
  all();
})();
