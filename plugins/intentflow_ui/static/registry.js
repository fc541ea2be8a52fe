// The registry page's trend chart (Chart.js, vendored: static/vendor/README.md): one test
// metric of every version, over version numbers or over registration time, values on hover,
// and every move of the champion alias marked (a dashed line and a star). Data comes from the
// page's <script type="application/json" id="trend-data"> (the server's JSON, never code).
(function () {
  "use strict";
  var dataNode = document.getElementById("trend-data");
  var canvas = document.getElementById("trend-chart");
  if (!dataNode || !canvas || typeof Chart === "undefined") return;
  var data = JSON.parse(dataNode.textContent);
  var metricSelect = document.getElementById("trend-metric");
  var axisSelect = document.getElementById("trend-axis");
  var kinds = {};
  data.metrics.forEach(function (m) { kinds[m.name] = m.kind; });
  var chart = null;
  var numbers = data.versions.map(function (v) { return v.version; });
  var firstVersion = Math.min.apply(null, numbers), lastVersion = Math.max.apply(null, numbers);

  // The same formats as the server's (plugins/intentflow_ui/fmt.py).
  function format(name, x) {
    if (x === null || x === undefined) return "n/a";
    switch (kinds[name]) {
      case "count": return Math.round(x).toLocaleString("en");
      case "ms": return (x < 100 ? x.toFixed(1) : x.toFixed(0)) + " ms";
      case "per_s": return Math.round(x).toLocaleString("en") + "/s";
      case "rate": return (100 * x).toFixed(1) + "%";
      default: return x.toFixed(3);
    }
  }

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function stamp(iso) { return new Date(iso).getTime(); }
  function day(ms) { return new Date(ms).toISOString().slice(0, 16).replace("T", " "); }

  // Which version was champion after each version's registration: the star marks a version
  // the champion alias moved to.
  var madeChampion = {};
  data.champion.forEach(function (c) { madeChampion[c.version] = true; });

  var championLines = {
    id: "championLines",
    afterDatasetsDraw: function (c) {
      var x = c.scales.x, area = c.chartArea, ctx = c.ctx;
      var byTime = axisSelect && axisSelect.value === "time";
      ctx.save();
      ctx.setLineDash([4, 4]);
      ctx.strokeStyle = css("--better");
      ctx.fillStyle = css("--fg-muted");
      ctx.font = "11px " + getComputedStyle(document.body).fontFamily;
      var stacked = {};  // moves drawn at the same place: their labels one under another
      data.champion.forEach(function (move) {
        var at = byTime ? stamp(move.at) : move.version;
        var px = x.getPixelForValue(at);
        if (px < area.left - 1 || px > area.right + 1) return;
        var key = Math.round(px / 4);
        var row = stacked[key] = (stacked[key] || 0) + 1;
        ctx.beginPath();
        ctx.moveTo(px, area.top);
        ctx.lineTo(px, area.bottom);
        ctx.stroke();
        ctx.fillText("\u2605 v" + move.version + " (" + move.action + ")", px + 4, area.top + 12 * row - 2);
      });
      ctx.restore();
    }
  };

  function points(metric, byTime) {
    return data.versions
      .filter(function (v) { return v.values[metric] !== null && v.values[metric] !== undefined; })
      .map(function (v) {
        return { x: byTime ? stamp(v.at) : v.version, y: v.values[metric], version: v.version, at: v.at };
      });
  }

  function draw() {
    var metric = metricSelect ? metricSelect.value : data.metrics[0].name;
    var byTime = axisSelect && axisSelect.value === "time";
    var pts = points(metric, byTime);
    var accent = css("--accent"), grid = css("--border"), fg = css("--fg-muted");
    // A visible range around the values (a flat line included); rates stay within 0-100%.
    var ys = pts.map(function (p) { return p.y; });
    var lo = Math.min.apply(null, ys), hi = Math.max.apply(null, ys);
    var pad = hi - lo > 1e-9 ? (hi - lo) * 0.15 : Math.max(Math.abs(hi) * 0.1, 0.05);
    lo -= pad; hi += pad;
    if (kinds[metric] === "rate") { lo = Math.max(lo, 0); hi = Math.min(hi, 1); }
    if (kinds[metric] === "count" || kinds[metric] === "ms") lo = Math.max(lo, 0);
    if (chart) chart.destroy();
    canvas.setAttribute("aria-label", "test " + metric + " of each version, over " +
      (byTime ? "time" : "versions") + ": " + pts.map(function (p) {
        return "v" + p.version + " " + format(metric, p.y);
      }).join(", "));
    chart = new Chart(canvas, {
      type: "line",
      data: {
        datasets: [{
          label: "test " + metric,
          data: pts,
          borderColor: accent,
          backgroundColor: accent,
          pointStyle: pts.map(function (p) { return madeChampion[p.version] ? "star" : "circle"; }),
          pointRadius: pts.map(function (p) { return madeChampion[p.version] ? 9 : 4; }),
          pointHoverRadius: 10,
          pointBorderWidth: 2,
          tension: 0
        }]
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "nearest", intersect: false },
        layout: { padding: { top: 18, right: 12 } },
        scales: {
          x: {
            type: "linear",
            grid: { color: grid },
            ticks: byTime
              ? { color: fg, maxTicksLimit: 6, callback: function (v) { return day(v); } }
              : { color: fg, stepSize: 1, precision: 0, callback: function (v) { return "v" + v; } },
            min: byTime ? undefined : firstVersion - 0.5,
            max: byTime ? undefined : lastVersion + 0.5,
            // One tick per version number, none between them.
            afterBuildTicks: byTime ? undefined : function (axis) {
              axis.ticks = data.versions.map(function (v) { return { value: v.version }; });
            }
          },
          y: {
            grid: { color: grid },
            min: lo,
            max: hi,
            ticks: { color: fg, maxTicksLimit: 7, callback: function (v) { return format(metric, v); } }
          }
        },
        plugins: {
          legend: { display: false },
          tooltip: {
            callbacks: {
              title: function (items) {
                var p = items[0].raw;
                return "v" + p.version + " \u00b7 " + day(stamp(p.at)) + " UTC" +
                  (madeChampion[p.version] ? " \u00b7 made champion" : "");
              },
              label: function (item) { return metric + ": " + format(metric, item.raw.y); }
            }
          }
        }
      },
      plugins: [championLines]
    });
    canvas.dataset.points = String(pts.length);
    updateTable(metric);
  }

  function updateTable(metric) {
    var body = document.querySelector("#trend-table tbody");
    var head = document.querySelector("#trend-table thead th:last-child");
    if (!body || !head) return;
    head.textContent = metric;
    body.textContent = "";
    data.versions.forEach(function (v) {
      var row = body.insertRow();
      row.insertCell().textContent = "v" + v.version;
      row.insertCell().textContent = day(stamp(v.at));
      var cell = row.insertCell();
      cell.className = "num";
      cell.textContent = format(metric, v.values[metric]);
    });
  }

  [metricSelect, axisSelect].forEach(function (el) {
    if (el) el.addEventListener("change", draw);
  });
  document.addEventListener("intentflow-theme", draw);
  draw();
})();
