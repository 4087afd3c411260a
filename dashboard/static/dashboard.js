// Draw each figure from the JSON beside it; the currency select submits its form.
(function () {
  "use strict";
  document.querySelectorAll("script[type='application/json'][data-figure]").forEach(function (el) {
    var figure = JSON.parse(el.textContent);
    var config = { responsive: true, displaylogo: false };
    Plotly.newPlot(el.getAttribute("data-figure"), figure.data, figure.layout, config);
  });
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
})();
