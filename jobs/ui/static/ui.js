// The web UI's few scripts: live job progress (polling the UI's JSON) and renaming clusters in place.
(function () {
  "use strict";
  var TERMINAL = ["succeeded", "failed", "cancelled", "interrupted"];

  function percent(job) { return Math.round(job.progress * 100) + "%"; }

  function jobRow(job) {
    var row = document.createElement("tr");
    row.setAttribute("data-job", job.id);
    var cells = [
      ["", null], [job.name || "", null], [job.kind, null], [job.state, "state state-" + job.state], ["", null],
      [job.step || "", "step"], [(job.created_at || "").slice(0, 19).replace("T", " "), null]
    ];
    cells.forEach(function (c) {
      var td = document.createElement("td");
      td.textContent = c[0];
      if (c[1]) td.className = c[1];
      row.appendChild(td);
    });
    var link = document.createElement("a");
    link.href = "/ui/jobs/" + encodeURIComponent(job.id);
    link.textContent = job.id;
    row.children[0].appendChild(link);
    var bar = document.createElement("span"), fill = document.createElement("span");
    bar.className = "progress"; fill.style.width = percent(job); bar.appendChild(fill);
    row.children[4].appendChild(bar);
    row.children[4].appendChild(document.createTextNode(" " + percent(job)));
    return row;
  }

  function pollJobs(url) {
    var body = document.querySelector("#jobs tbody");
    function tick() {
      fetch(url, {credentials: "same-origin"}).then(function (r) { return r.ok ? r.json() : null; }).then(function (data) {
        if (!data) return;
        if (data.jobs.length) {
          body.replaceChildren.apply(body, data.jobs.map(jobRow));
        }
        var active = data.jobs.some(function (j) { return TERMINAL.indexOf(j.state) < 0; });
        setTimeout(tick, active ? 700 : 3000);
      }).catch(function () { setTimeout(tick, 3000); });
    }
    setTimeout(tick, 700);
  }

  function pollJob(url) {
    function tick() {
      fetch(url, {credentials: "same-origin"}).then(function (r) { return r.ok ? r.json() : null; }).then(function (job) {
        if (!job) return;
        document.getElementById("job-state").textContent = job.state;
        document.getElementById("job-state").className = "state state-" + job.state;
        document.getElementById("job-progress").textContent = percent(job);
        document.getElementById("job-progress-bar").style.width = percent(job);
        document.getElementById("job-step").textContent = job.step || "";
        if (TERMINAL.indexOf(job.state) >= 0) { window.location.reload(); return; }
        setTimeout(tick, 500);
      }).catch(function () { setTimeout(tick, 2000); });
    }
    setTimeout(tick, 500);
  }

  function renameForms(base) {
    var forms = document.querySelectorAll("form.rename");
    Array.prototype.forEach.call(forms, function (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var status = form.querySelector(".rename-status");
        var name = form.querySelector("input[name=name]").value;
        status.textContent = "saving…";
        fetch(base + form.getAttribute("data-cluster") + "/name", {
          method: "POST", credentials: "same-origin", headers: {"Content-Type": "application/json"},
          body: JSON.stringify({name: name})
        }).then(function (r) {
          return r.json().then(function (body) { return {ok: r.ok, body: body}; });
        }).then(function (answer) {
          if (answer.ok) {
            status.textContent = "saved";
            form.querySelector("input[name=name]").value = answer.body.name;
            relabel(form.getAttribute("data-cluster"), answer.body.name);
          } else {
            status.textContent = answer.body.message || "not saved";
            status.classList.add("error");
          }
        }).catch(function () { status.textContent = "not saved: the service did not answer"; });
      });
    });
  }

  // After a rename, the figures' legends and the section headings show the new name.
  function relabel(cluster, name) {
    var prefix = cluster + " · ";
    var plots = document.querySelectorAll(".js-plotly-plot");
    Array.prototype.forEach.call(plots, function (plot) {
      var changed = [];
      (plot.data || []).forEach(function (trace, i) {
        if (typeof trace.name === "string" && trace.name.indexOf(prefix) === 0) changed.push(i);
      });
      if (changed.length) Plotly.restyle(plot, {name: prefix + name}, changed);
    });
    var headings = document.querySelectorAll(".observation-group h4, .gallery-label");
    Array.prototype.forEach.call(headings, function (h) {
      var text = h.lastChild;
      if (text && text.nodeType === 3 && text.textContent.indexOf(prefix) === 0) text.textContent = prefix + name;
    });
  }

  window.clustraUI = {pollJobs: pollJobs, pollJob: pollJob, renameForms: renameForms};
})();
