// Earlier pictures, newest first, from GET /v1/jobs (the daemon keeps them across restarts).
// Clicking one shows it with its settings; "Use these settings" puts them back in the form.

import { forget } from "./api.js";

const byVb = (name) => document.querySelector(`[data-vb="${name}"]`);
const HISTORY_LIMIT = 24;

// The settings shown for a job, in this order, with their labels.
const SETTINGS = [
  ["prompt", "Prompt"],
  ["negative_prompt", "Negative prompt"],
  ["transcript", "Heard"],
  ["seed", "Seed"],
  ["steps", "Steps"],
  ["size", "Size"],
  ["scheduler", "Scheduler"],
  ["guidance_scale", "Guidance"],
  ["mode", "Started from"],
  ["strength", "Strength"],
  ["model", "Model"],
  ["status", "Status"],
];

export class History {
  constructor(api, { onSelect, onReuse }) {
    Object.assign(this, { api, onSelect, onReuse });
    this.list = byVb("history");
    this.detail = byVb("history-detail");
    this.settings = byVb("history-settings");
    this.empty = byVb("history-empty");
    this.jobs = new Map();
    this.selected = null;
    byVb("reuse").addEventListener("click", () => {
      if (this.selected) this.onReuse(this.selected);
    });
  }

  async load() {
    const { data } = await this.api.json(`/v1/jobs?limit=${HISTORY_LIMIT}`);
    for (const item of this.list.querySelectorAll("img")) forget(item.src);
    this.list.replaceChildren();
    this.jobs.clear();
    for (const job of data) this.append(job, false);
    this.empty.hidden = this.jobs.size > 0;
  }

  /** A job that just ended, at the top. */
  add(job) {
    const old = this.list.querySelector(`[data-vb-job="${job.id}"]`);
    if (old) old.closest("li").remove();
    this.append(job, true);
    this.empty.hidden = true;
  }

  append(job, first) {
    if (job.status === "listening" || job.status === "queued") return; // not yet a picture
    this.jobs.set(job.id, job);
    const item = document.createElement("li");
    const entry = document.createElement("button");
    entry.type = "button";
    entry.className = "entry";
    entry.dataset.vbJob = job.id;
    entry.dataset.status = job.status;
    const thumb = document.createElement("img");
    thumb.alt = "";
    thumb.loading = "lazy";
    const words = document.createElement("span");
    words.className = "words";
    words.textContent = job.prompt || job.transcript || "(nothing heard)";
    const note = document.createElement("small");
    note.textContent = job.status === "done" ? `seed ${job.seed}` : job.status;
    entry.append(thumb, words, note);
    entry.addEventListener("click", () => this.select(job.id));
    item.append(entry);
    if (first) this.list.prepend(item);
    else this.list.append(item);
    const image = (job.images || [])[0];
    if (image) {
      this.api.fileUrl(image).then(
        (src) => {
          thumb.src = src;
        },
        () => {
          thumb.remove(); // the picture is gone (pruned): the entry stays, with its words
        },
      );
    } else {
      thumb.remove();
    }
  }

  select(jobId) {
    const job = this.jobs.get(jobId);
    if (!job) return;
    this.selected = job;
    for (const entry of this.list.querySelectorAll(".entry")) entry.setAttribute("aria-pressed", String(entry.dataset.vbJob === jobId));
    const rows = [];
    for (const [key, label] of SETTINGS) {
      const value = job[key];
      if (value === null || value === undefined || value === "") continue;
      const term = document.createElement("dt");
      term.textContent = label;
      const text = document.createElement("dd");
      text.dataset.vbSetting = key;
      text.textContent = String(value);
      rows.push(term, text);
    }
    if (job.error && job.error.message) {
      const term = document.createElement("dt");
      term.textContent = "Why it ended";
      const text = document.createElement("dd");
      text.textContent = job.error.message;
      rows.push(term, text);
    }
    this.settings.replaceChildren(...rows);
    this.detail.hidden = false;
    this.onSelect(job);
  }
}
