// One picture: send the request (a take, a typed prompt, a sketch), follow its job's events
// (the words, progress with previews), then show the result with its settings.
// Everything from a job is shown with textContent: nothing it says becomes HTML.

import { forget } from "./api.js";
import { jobSentence } from "./messages.js";

const byVb = (name) => document.querySelector(`[data-vb="${name}"]`);

/** What one picture is asked with: the form fields of POST /v1/jobs. */
export function jobForm(request) {
  const form = new FormData();
  const fields = ["prompt", "negative_prompt", "size", "steps", "seed"];
  for (const name of fields) {
    const value = request[name];
    if (value !== undefined && value !== null && String(value).trim() !== "") form.append(name, String(value).trim());
  }
  if (request.take) form.append("file", request.take.blob, request.take.filename);
  if (request.image) {
    form.append("image", request.image, request.image.name || "sketch.png");
    form.append("strength", String(request.strength));
  }
  return form;
}

export class PictureView {
  constructor(api, status, { onTranscript, onDone }) {
    Object.assign(this, { api, status, onTranscript, onDone });
    this.el = {
      progress: byVb("progress"),
      cancel: byVb("cancel"),
      preview: byVb("preview"),
      result: byVb("result"),
      prompt: byVb("result-prompt"),
      negative: byVb("result-negative"),
      seed: byVb("seed"),
      again: byVb("again"),
      download: byVb("download"),
      figure: byVb("picture"),
      empty: byVb("result-empty"),
    };
    this.current = null; // the job shown
    this.running = null; // {id, follow: AbortController}
    this.lastRequest = null;
    this.el.cancel.addEventListener("click", () => this.cancel());
  }

  /** Queue a job and follow it to its end; resolves to the finished job (or null). */
  async draw(request) {
    this.lastRequest = request;
    this.stopFollowing();
    const follow = new AbortController();
    this.running = { id: null, follow };
    this.showProgress(0, 0);
    this.el.empty.hidden = true;
    this.status.say(request.take ? "Hearing what you said…" : "Sending…", "busy");
    let job;
    try {
      job = await this.api.json("/v1/jobs", { method: "POST", form: jobForm(request), signal: follow.signal });
    } catch (error) {
      if (this.running && this.running.follow === follow) this.running = null;
      this.hideProgress();
      throw error;
    }
    this.running.id = job.id;
    this.el.cancel.hidden = false;
    this.el.cancel.disabled = false;
    try {
      return await this.follow(job.id, follow.signal);
    } finally {
      if (this.running && this.running.follow === follow) {
        this.running = null;
        this.hideProgress();
      }
    }
  }

  async follow(jobId, signal) {
    let ended = null;
    try {
      for await (const { event, data } of this.api.events(`/v1/jobs/${jobId}/events`, signal)) {
        if (event === "transcript") {
          this.onTranscript(data.transcript || "", data.prompt || "");
          this.status.say("Drawing…", "busy");
        } else if (event === "progress") {
          this.showProgress(data.step, data.steps);
          this.status.say(`Drawing: step ${data.step} of ${data.steps}.`, "busy");
          if (data.preview) {
            this.el.preview.src = `data:image/jpeg;base64,${data.preview}`;
            this.el.preview.hidden = false;
          }
        } else if (event === "done" || event === "failed" || event === "cancelled") {
          ended = data;
        }
      }
    } catch (error) {
      if (error.name === "AbortError") return null;
      throw error;
    }
    if (!ended) ended = await this.api.json(`/v1/jobs/${jobId}`); // the stream broke off: ask
    this.el.preview.hidden = true;
    if (ended.status === "done") {
      await this.show(ended);
      this.status.say(`Done. Seed ${ended.seed}.`, "done");
    } else {
      this.status.say(jobSentence(ended), ended.status === "cancelled" ? "info" : "error");
    }
    this.onDone(ended);
    return ended;
  }

  async cancel() {
    const running = this.running;
    if (!running || !running.id) return;
    this.el.cancel.disabled = true;
    this.status.say("Cancelling…", "busy");
    try {
      await this.api.request(`/v1/jobs/${running.id}`, { method: "DELETE" });
    } catch (error) {
      this.el.cancel.disabled = false;
      this.status.fail(error);
    }
    // The job's stream ends with its cancelled event, which says so.
  }

  stopFollowing() {
    if (this.running) this.running.follow.abort();
    this.running = null;
  }

  /** Show a finished job as the current picture, with its prompt, negative prompt and seed. */
  async show(job) {
    this.current = job;
    this.el.empty.hidden = true;
    this.el.prompt.textContent = job.prompt || "";
    this.el.negative.textContent = job.negative_prompt || "(none)";
    this.el.seed.textContent = job.seed === null || job.seed === undefined ? "" : String(job.seed);
    this.el.again.disabled = !job.prompt;
    const image = (job.images || [])[0];
    forget(this.el.result.dataset.src);
    if (!image) {
      this.el.result.hidden = true;
      this.el.download.hidden = true;
      this.el.figure.dataset.job = job.id;
      return;
    }
    const src = await this.api.fileUrl(image);
    this.el.result.src = src;
    this.el.result.dataset.src = src;
    this.el.result.alt = job.prompt || "The picture";
    this.el.result.hidden = false;
    this.el.download.href = src;
    this.el.download.download = `voicebrush-${job.seed}.png`;
    this.el.download.hidden = false;
    this.el.figure.dataset.job = job.id;
    this.el.figure.hidden = false;
  }

  showProgress(step, steps) {
    this.el.progress.hidden = false;
    this.el.progress.max = Math.max(1, steps);
    if (steps) this.el.progress.value = step;
    else this.el.progress.removeAttribute("value"); // indeterminate while it is heard and queued
  }

  hideProgress() {
    this.el.progress.hidden = true;
    this.el.cancel.hidden = true;
    this.el.preview.hidden = true;
  }
}
