// A storyboard: a script (pasted, typed or dictated) becomes a sheet of panels, with its PDF.

import { forget } from "./api.js";
import { jobSentence } from "./messages.js";

const byVb = (name) => document.querySelector(`[data-vb="${name}"]`);

export class Storyboard {
  constructor(api, status, { options, onShot }) {
    Object.assign(this, { api, status, options, onShot });
    this.el = {
      script: byVb("script"),
      make: byVb("storyboard"),
      cancel: byVb("storyboard-cancel"),
      progress: byVb("storyboard-progress"),
      sheet: byVb("sheet"),
      pdf: byVb("sheet-pdf"),
      shots: byVb("storyboard-shots"),
    };
    this.board = null;
    this.el.make.addEventListener("click", () => this.make().catch((error) => this.status.fail(error)));
    this.el.cancel.addEventListener("click", () => this.cancel().catch((error) => this.status.fail(error)));
  }

  async make() {
    const script = this.el.script.value.trim();
    if (!script) {
      this.status.say("Write, paste or dictate a script first: one shot per line, or say “next shot” between them.", "error");
      this.el.script.focus();
      return;
    }
    const { negative_prompt, size, steps } = this.options();
    const body = { script };
    if (negative_prompt) body.negative_prompt = negative_prompt;
    if (size) body.size = size;
    if (steps) body.steps = Number(steps);
    this.el.make.disabled = true;
    this.status.say("Splitting the script into shots…", "busy");
    try {
      const board = await this.api.json("/v1/storyboards", { method: "POST", json: body });
      this.board = board;
      this.showShots(board);
      this.el.cancel.hidden = false;
      this.el.progress.hidden = false;
      this.el.progress.max = board.shots.length;
      this.el.progress.value = 0;
      await this.follow(board);
    } finally {
      this.el.make.disabled = false;
      this.el.cancel.hidden = true;
      this.el.progress.hidden = true;
    }
  }

  showShots(board) {
    const items = board.shots.map((shot) => {
      const item = document.createElement("li");
      item.dataset.shot = String(shot.index);
      item.textContent = `${shot.index}. ${shot.text}`;
      return item;
    });
    this.el.shots.replaceChildren(...items);
  }

  async follow(board) {
    const total = board.shots.length;
    let ended = 0;
    let final = null;
    for await (const { event, data } of this.api.events(`/v1/storyboards/${board.id}/events`)) {
      if (event === "progress") {
        this.status.say(`Drawing shot ${data.index} of ${total}: step ${data.step} of ${data.steps}.`, "busy");
      } else if (event === "done" && data.index === undefined) {
        final = data; // the board, once every shot has ended
      } else if (["done", "failed", "cancelled"].includes(event)) {
        ended += 1;
        this.el.progress.value = ended;
        const item = this.el.shots.querySelector(`[data-shot="${Number(data.index)}"]`);
        if (item) item.dataset.status = event;
        if (event === "done") this.onShot(data);
        if (event === "failed") this.status.say(`Shot ${data.index}: ${jobSentence(data)}`, "error");
      }
    }
    if (!final) final = await this.api.json(`/v1/storyboards/${board.id}`);
    await this.showSheet(final);
  }

  async showSheet(board) {
    if (!board.sheet) return;
    forget(this.el.sheet.dataset.src);
    forget(this.el.pdf.dataset.src);
    const [png, pdf] = await Promise.all([this.api.fileUrl(board.sheet.png), this.api.fileUrl(board.sheet.pdf)]);
    this.el.sheet.src = png;
    this.el.sheet.dataset.src = png;
    this.el.sheet.hidden = false;
    this.el.sheet.dataset.board = board.id;
    this.el.pdf.href = pdf;
    this.el.pdf.dataset.src = pdf;
    this.el.pdf.download = `storyboard-${board.id.slice(0, 8)}.pdf`;
    this.el.pdf.hidden = false;
    const failed = board.shots.filter((shot) => shot.status === "failed").length;
    if (board.status === "done") this.status.say(`The storyboard is ready: ${board.shots.length} panels.`, "done");
    else if (board.status === "cancelled") this.status.say("The storyboard was cancelled; the sheet shows the panels that were drawn.", "info");
    else this.status.say(`The storyboard ended with ${failed} shot${failed === 1 ? "" : "s"} failed; the sheet shows the rest.`, "error");
  }

  async cancel() {
    if (!this.board) return;
    this.status.say("Cancelling the storyboard…", "busy");
    await this.api.request(`/v1/storyboards/${this.board.id}`, { method: "DELETE" });
  }
}
