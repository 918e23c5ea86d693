// Draws the emailing page's chart from the JSON the server embedded (the same object
// GET ms/emailing/$id/charts/timeline answers). Without JavaScript the table shows it all.
(function () {
  "use strict";
  function draw() {
    var source = document.getElementById("timeline-data");
    var target = document.getElementById("chart");
    if (!source || !target || typeof uPlot === "undefined") return;
    var data = JSON.parse(source.textContent);
    var x = [], opens = [], opensUnique = [], clicks = [], clicksUnique = [];
    data.buckets.forEach(function (b) {
      x.push(b.time);
      opens.push(b.impressions.total);
      opensUnique.push(b.impressions.unique);
      clicks.push(b.clicks.total);
      clicksUnique.push(b.clicks.unique);
    });
    var zone = data.timezone;
    // Axis labels in the account's zone, 24-hour clock: the day at midnight, else the hour.
    var day = new Intl.DateTimeFormat("en-GB", { timeZone: zone, day: "numeric", month: "short" });
    var hour = new Intl.DateTimeFormat("en-GB", { timeZone: zone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
    function label(ts) {
      var date = new Date(ts * 1e3);
      var clock = hour.format(date);
      return data.interval === "day" || clock === "00:00" ? day.format(date) : clock;
    }
    var opts = {
      width: Math.max(280, target.clientWidth),
      height: 300,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), zone); },
      series: [
        { label: "From", value: function (u, ts) { return ts == null ? "" : day.format(new Date(ts * 1e3)) + " " + hour.format(new Date(ts * 1e3)); } },
        { label: "Opens", stroke: "#1c64f2", width: 2, points: { show: x.length < 80 } },
        { label: "Unique opens", stroke: "#93b4f8", width: 1, dash: [4, 3] },
        { label: "Clicks", stroke: "#d9480f", width: 2, points: { show: x.length < 80 } },
        { label: "Unique clicks", stroke: "#f4a27b", width: 1, dash: [4, 3] }
      ],
      axes: [
        { values: function (u, splits) { return splits.map(label); } },
        { size: 50 }
      ],
      scales: { y: { range: function (u, min, max) { return [0, Math.max(1, max)]; } } }
    };
    var chart = new uPlot(opts, [x, opens, opensUnique, clicks, clicksUnique], target);
    target.setAttribute("data-points", String(x.length));
    window.mailstatsChart = chart;
    window.addEventListener("resize", function () {
      chart.setSize({ width: Math.max(280, target.clientWidth), height: 300 });
    });
  }
  // Picking a date means a range of dates; without JavaScript, choose "Dates below".
  function customDates() {
    var range = document.getElementById("range");
    document.querySelectorAll("#range-form input[type=date]").forEach(function (input) {
      input.addEventListener("change", function () { if (range) range.value = "custom"; });
    });
  }
  function start() { draw(); customDates(); }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
