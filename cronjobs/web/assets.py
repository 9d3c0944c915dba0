"""The status page's stylesheet and its one script (served as /page.js: the CSP allows no inline script).

Wide screens get dense tables; below 720 px each row becomes a card (its cells labelled by data-label).
The script is optional: without it the page shows times in the configured zone and refreshes by a
<noscript> meta refresh only while something is about to change.
"""

CSS = """
*{box-sizing:border-box}
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:110em;padding:.5em 1em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:.3em 0}h2{font-size:1.1em;margin:1.2em 0 .4em}
.badge{border-radius:4px;padding:0 .4em;font-size:.85em;background:#eee;white-space:nowrap}
.ok{background:#d7f5dd}.bad{background:#fbd5d5}.run{background:#d6e8fb}.wait{background:#f3ecd0}
.notice{border:1px solid #9bc59b;background:#eaf7ea;border-radius:6px;padding:.4em .7em;margin:.5em 0}
.notice.problem{border-color:#d9a0a0;background:#fdeeee}
.ticking{border:1px solid #9cc0e8;background:#eaf3fd;border-radius:6px;padding:.4em .7em;margin:.5em 0}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #ddd}
th,td{text-align:left;vertical-align:top;padding:.25em .5em;border-bottom:1px solid #eee}
th{background:#f1f1f1;font-weight:600;white-space:nowrap}
td{overflow-wrap:anywhere}td.nowrap{white-space:nowrap}
progress{width:7em;height:.9em;vertical-align:middle}
pre{white-space:pre-wrap;font-size:.85em;background:#f4f4f4;padding:.4em;margin:.2em 0;max-height:20em;overflow:auto}
.error{color:#a00}.warning{color:#8a5a00}.muted{color:#666;font-size:.9em}
ul{margin:0;padding-left:1.1em}details summary{cursor:pointer;color:#444}
form.inline{display:inline;margin:0}
button{font:inherit;padding:.15em .7em;border:1px solid #888;border-radius:4px;background:#fff;cursor:pointer}
button.danger{border-color:#b55;color:#922}
.filters{display:flex;flex-wrap:wrap;gap:.4em 1em;align-items:end;margin:.3em 0 .6em}
.filters label{display:flex;flex-direction:column;font-size:.85em;color:#555}
.filters select{font:inherit;min-width:9em;padding:.15em}
tr.parent td{border-bottom:0}
td.tree{padding:0 .5em .5em 1.6em}
details.children>summary{color:#555;font-size:.9em;padding:.1em 0;width:max-content;max-width:100%}
ul.tree{list-style:none;margin:0 0 0 .45em;padding-left:1.1em}
ul.tree li{position:relative;padding:.2em 0}
ul.tree li::before,ul.tree li::after{content:"";position:absolute;left:-1.1em;border:0 solid #cdd5e0}
ul.tree li::before{top:0;height:1em;width:.8em;border-width:0 0 2px 2px}
ul.tree li::after{top:1em;bottom:0;border-left-width:2px}ul.tree li:last-child::after{content:none}
ul.tree .line{display:flex;flex-wrap:wrap;align-items:center;gap:.15em .9em}
ul.tree .what{min-width:16em}ul.tree .name{font-weight:600}ul.tree .bar{min-width:10.5em}
ul.tree li.more{color:#666;font-size:.9em}ul.tree li.more::before{border-bottom-style:dotted}
ul.tree .act{margin-left:auto}
@media (max-width:720px){
  body{padding:.4em}
  table,thead,tbody,tr,td{display:block;width:100%;border:0;background:none}
  thead{display:none}
  tr{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.4em .6em;margin:.5em 0}
  td{display:grid;grid-template-columns:6.5em 1fr;gap:.6em;padding:.15em 0;border:0}
  td::before{content:attr(data-label);color:#666}
  td.title{display:flex;justify-content:space-between;font-weight:600}
  td.title::before{content:none}
  td.empty{display:none}
  progress{width:100%}
  .filters select{min-width:0;width:100%}.filters label{flex:1 1 40%}
  tr.parent{border-bottom:0;border-radius:6px 6px 0 0;margin-bottom:0}
  tr.family{border-top:1px dashed #ddd;border-radius:0 0 6px 6px;margin-top:0;padding-top:.2em}
  td.tree{display:block;padding:0}td.tree::before{content:none}
  ul.tree{margin-left:.2em;padding-left:.8em}ul.tree li::before,ul.tree li::after{left:-.8em}
  ul.tree li::before{width:.6em}
  ul.tree .what{min-width:0;flex:1 1 100%;display:flex;justify-content:space-between}
  ul.tree .bar{min-width:0;flex:1 1 100%}ul.tree .bar>span{display:flex;align-items:center;gap:.5em}
  ul.tree .bar progress{flex:1 1 auto;width:auto;min-width:0}ul.tree .pct{white-space:nowrap}
  ul.tree .act{margin-left:0}
}
"""

JS = r"""
(function () {
  "use strict";
  var formats = {month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
                 timeZoneName: "short"};
  function localTimes(root) {
    var times = root.querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var when = new Date(times[i].getAttribute("datetime"));
      if (!isNaN(when.getTime())) {
        times[i].title = times[i].textContent;
        var options = Object.assign({}, formats);
        if (when.getFullYear() !== new Date().getFullYear()) options.year = "numeric";
        times[i].textContent = when.toLocaleString(undefined, options);
      }
    }
  }
  localTimes(document);
  document.documentElement.setAttribute("data-local-times", "1");

  var body = document.body, live = body.getAttribute("data-live"), state = body.getAttribute("data-state");
  var poll = parseFloat(body.getAttribute("data-poll") || "0");
  if (!live || !(poll > 0)) return;

  function show(items) {
    for (var i = 0; i < items.length; i++) {
      var cells = document.querySelectorAll('[data-progress="' + items[i].uuid + '"]');
      for (var j = 0; j < cells.length; j++) {
        var bar = cells[j].querySelector("progress"), text = cells[j].querySelector(".pct");
        if (bar) bar.value = items[i].progress;
        if (text) text.textContent = Math.round(items[i].progress) + "%";
      }
    }
  }
  // A reload would close what the user opened or is choosing: wait until they are done.
  function reading() {
    var active = document.activeElement;
    // a family the page itself opened does not count, only what the user opened
    return document.querySelector("details[open]:not([data-auto-open])") !== null ||
      (active !== null && (active.tagName === "SELECT" || active.tagName === "INPUT"));
  }
  function look() {
    fetch(live, {credentials: "same-origin", cache: "no-store"}).then(function (answer) {
      return answer.ok ? answer.json() : null;
    }).then(function (now) {
      if (!now) return;
      if (now.state !== state) {
        if (reading()) setTimeout(look, 5000); else window.location.reload();
        return;
      }
      show(now.progress || []);
      if (now.poll) setTimeout(look, now.poll * 1000);
    }).catch(function () { setTimeout(look, 30000); });
  }
  setTimeout(look, poll * 1000);
})();
"""
