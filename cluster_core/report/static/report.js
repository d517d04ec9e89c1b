// Draws the page's plotly figures: each <div data-figure> has its JSON in the next
// <script class="figure-data">. Figures inside a closed <details> are drawn when it opens.
(function () {
  "use strict";
  var config = {displaylogo: false, responsive: true, modeBarButtonsToRemove: ["sendDataToCloud"], showLink: false};

  function draw(root) {
    var scripts = root.querySelectorAll("script.figure-data");
    for (var i = 0; i < scripts.length; i++) {
      var script = scripts[i];
      var target = document.getElementById(script.getAttribute("data-for"));
      if (!target || target.getAttribute("data-drawn")) continue;
      var closed = target.closest("details:not([open])");
      if (closed) continue;
      var figure = JSON.parse(script.textContent);
      target.setAttribute("data-drawn", "1");
      Plotly.newPlot(target, figure.data, figure.layout, config);
    }
  }

  window.clustraDraw = draw;
  document.addEventListener("DOMContentLoaded", function () {
    draw(document);
    var details = document.querySelectorAll("details");
    for (var i = 0; i < details.length; i++) {
      details[i].addEventListener("toggle", function (event) { if (event.target.open) draw(event.target); });
    }
  });
})();
