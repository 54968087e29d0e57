"use strict";
// The page asks /api/status every POLL_MS and redraws from it; every user-given name goes in
// as text (never as HTML).
const POLL_MS = 1500;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.appendChild(child);
  return node;
}

function clock(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const m = Math.floor(seconds / 60), s = seconds % 60;
  return m ? `${m} min ${s} s` : `${s} s`;
}

function fill(list, items) {
  list.replaceChildren(...items);
}

function drawRunning(running) {
  document.getElementById("idle").hidden = !!running;
  document.getElementById("running").hidden = !running;
  if (!running) return;
  document.getElementById("running-name").textContent = running.name;
  document.getElementById("running-words").textContent = running.words;
  document.getElementById("running-bar").style.width = `${running.percent}%`;
  document.getElementById("running-percent").textContent = `${running.percent}% of the job`;
  document.getElementById("running-elapsed").textContent =
    running.elapsed_s === null ? "" : `running for ${clock(running.elapsed_s)}`;
  document.getElementById("running-left").textContent =
    running.left_s === null ? "time left: estimating" : `about ${clock(running.left_s)} left`;
}

function picture(jobId, index, label, thumb) {
  const src = `files/${encodeURIComponent(jobId)}/${index}`;
  return el("a", {href: src, class: thumb ? "thumb" : "preview"},
            el("img", {src: src, alt: label, loading: "lazy"}));
}

function drawResult(card) {
  const box = el("article", {class: "result", "data-job": card.name});
  box.appendChild(el("h3", {}, el("span", {class: `verdict ${card.status}`, text: card.status}),
                     el("span", {class: "job-name", text: card.name})));
  if (card.outbox_name && card.outbox_name !== card.name)
    box.appendChild(el("p", {class: "muted", text: `in the outbox as ${card.outbox_name}`}));
  if (card.message) box.appendChild(el("p", {class: "reason", text: card.message}));
  if (card.interruptions)
    box.appendChild(el("p", {class: "muted",
      text: `interrupted ${card.interruptions} time(s); it went on from where it was`}));
  for (const video of card.videos) {
    const line = el("div", {class: "video", "data-video": video.name});
    const word = video.status === "done" ? "OK" : video.status;
    line.appendChild(el("span", {class: `verdict ${video.status}`, text: word}));
    line.appendChild(el("span", {class: "video-name", text: video.name}));
    if (video.status === "done" && video.output)
      line.appendChild(el("span", {class: "muted", text: ` → ${video.output}`}));
    if (video.message) line.appendChild(el("div", {class: "video-reason", text: video.message}));
    for (const warning of video.warnings)
      line.appendChild(el("div", {class: "warn", text: `warning: ${warning}`}));
    const pictures = el("div", {class: "pictures"});
    if (video.preview !== null)
      pictures.appendChild(picture(card.job_id, video.preview, `preview of ${video.name}`, false));
    for (const index of video.pictures)
      pictures.appendChild(picture(card.job_id, index, `picture of ${video.name}`, true));
    if (pictures.childElementCount) line.appendChild(pictures);
    box.appendChild(line);
  }
  return box;
}

function drawMachine(machine) {
  const rows = [
    ["engine", machine.engine], ["device", machine.device],
    ["daemon", machine.daemon_running ? `running for ${clock(machine.daemon_uptime_s)}`
                                      : "NOT RUNNING (jobs wait until it starts)"],
  ];
  for (const [place, gb] of Object.entries(machine.free_gb))
    rows.push([`free on the ${place}`, gb === null ? "unknown" : `${gb} GB`]);
  fill(document.getElementById("machine"),
       rows.flatMap(([k, v]) => [el("dt", {text: k}), el("dd", {text: v})]));
}

function draw(data) {
  const state = data.stopped ? "the daemon is stopped: jobs wait until it starts"
              : data.stopping ? "stopping: finishing the current video"
              : data.running ? "working" : "idle";
  document.getElementById("state").textContent = `${state} · updated ${data.updated_at}`;
  document.getElementById("problems").hidden = data.problems.length === 0;
  fill(document.getElementById("problem-list"), data.problems.map(p => el("li", {text: p.words})));
  drawRunning(data.running);
  const also = document.getElementById("also-running");
  also.hidden = !data.also_running || data.also_running.length === 0;
  fill(also, (data.also_running || []).map(r => el("li", {class: "also-job", "data-job": r.name},
    el("strong", {text: r.name}), el("span", {class: "muted", text: ` — ${r.words}`}))));
  const farm = document.getElementById("farm");
  farm.hidden = !data.farm || data.farm.length === 0;
  fill(farm, (data.farm || []).map(f => el("li", {class: "farm-video", "data-video": f.video},
    el("span", {text: f.words}))));
  document.getElementById("queue-empty").hidden = data.queue.length > 0;
  fill(document.getElementById("queue"), data.queue.map(q =>
    el("li", {class: "queued", "data-job": q.name}, el("strong", {text: q.name}),
       el("span", {class: "muted", text: ` — ${q.state}`}))));
  const loose = document.getElementById("loose");
  loose.hidden = data.loose.length === 0;
  loose.textContent = `Not a job folder (left alone): ${data.loose.join(", ")}`;
  document.getElementById("results-empty").hidden = data.results.length > 0;
  fill(document.getElementById("results"), data.results.map(drawResult));
  drawMachine(data.machine);
}

async function poll() {
  try {
    const response = await fetch("api/status", {cache: "no-store"});
    if (response.ok) draw(await response.json());
    else document.getElementById("state").textContent = `the page cannot read the status (${response.status})`;
  } catch (err) {
    document.getElementById("state").textContent = "the web service does not answer";
  }
  setTimeout(poll, POLL_MS);
}
poll();
