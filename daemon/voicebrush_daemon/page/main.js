// The page's wiring: connecting (health, the token), push to talk, typing, pictures in,
// storyboards and the history. Each part lives in its own module; this one joins them.

import { Api, ApiError } from "./api.js";
import { History } from "./history.js";
import { PageProblem, sentence } from "./messages.js";
import { PictureView } from "./picture.js";
import { Storyboard } from "./storyboard.js";
import { LiveWords, startTake } from "./voice.js";

const byVb = (name) => document.querySelector(`[data-vb="${name}"]`);
const LOADING_POLL_MS = 2000;

const api = new Api();

const el = {
  status: byVb("status"),
  tokenForm: byVb("token-form"),
  token: byVb("token"),
  talk: byVb("talk"),
  talkScript: byVb("talk-script"),
  transcript: byVb("transcript"),
  prompt: byVb("prompt"),
  generate: byVb("generate"),
  keepSeed: byVb("keep-seed"),
  negative: byVb("negative-prompt"),
  size: byVb("size"),
  steps: byVb("steps"),
  dropZone: byVb("drop-zone"),
  imageIn: byVb("image-in"),
  sketch: byVb("sketch"),
  sketchPreview: byVb("image-in-preview"),
  sketchClear: byVb("image-clear"),
  strength: byVb("strength"),
  strengthValue: byVb("strength-value"),
  again: byVb("again"),
  script: byVb("script"),
};

// ---- the status line ------------------------------------------------------------

const status = {
  say(text, kind = "info") {
    el.status.textContent = text;
    el.status.dataset.kind = kind;
  },
  fail(error) {
    if (error && error.status === 401) askForToken();
    else this.say(sentence(error, { hadToken: Boolean(api.token) }), "error");
  },
};

// ---- connecting: health, then the token if the daemon wants one -----------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function connect() {
  for (;;) {
    try {
      await api.request("/v1/health");
      break;
    } catch (error) {
      // Loading (503), or not answering: say so and look again.
      status.say(sentence(error), error.code === "loading" ? "busy" : "error");
      if (error.status && error.status !== 503) return;
      await sleep(LOADING_POLL_MS);
    }
  }
  try {
    await history.load();
  } catch (error) {
    status.fail(error);
    return;
  }
  el.tokenForm.hidden = true;
  status.say("Ready. Hold the button (or the space bar) and say what to draw, or type it.", "ready");
}

function askForToken() {
  const hadToken = Boolean(api.token);
  api.setToken(""); // a wrong token is not kept
  el.tokenForm.hidden = false;
  el.token.value = "";
  el.token.focus();
  status.say(sentence(new ApiError(401, "invalid_token", ""), { hadToken }), "error");
}

el.tokenForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const token = el.token.value.trim();
  if (!token) return;
  api.setToken(token);
  status.say("Checking the token…", "busy");
  connect();
});

// ---- the form -----------------------------------------------------------------

let sketch = null; // the picture to start from (a File), if any

function options() {
  return { negative_prompt: el.negative.value.trim(), size: el.size.value.trim(), steps: el.steps.value.trim() };
}

function pictureIn() {
  return sketch ? { image: sketch, strength: Number(el.strength.value) } : {};
}

/** The seed for the next picture: the current one's when "keep seed" is on, else a new one. */
function nextSeed() {
  const current = pictures.current;
  return el.keepSeed.checked && current && current.seed !== null ? current.seed : -1;
}

function draw(request) {
  pictures.draw(request).catch((error) => status.fail(error));
}

el.generate.addEventListener("click", () => {
  const prompt = el.prompt.value.trim();
  if (!prompt) {
    status.say("Type a prompt first, or hold the button and say it.", "error");
    el.prompt.focus();
    return;
  }
  el.transcript.textContent = "";
  draw({ prompt, ...options(), ...pictureIn(), seed: nextSeed() });
});

el.prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) el.generate.click();
});

el.again.addEventListener("click", () => {
  const current = pictures.current;
  if (!current || !current.prompt) return;
  // The same words and settings, a new seed.
  draw({ prompt: current.prompt, negative_prompt: current.negative_prompt, size: current.size, steps: current.steps, ...pictureIn(), seed: -1 });
});

// ---- start from a picture -------------------------------------------------------

function setSketch(file) {
  if (!file) return;
  if (!/^image\/(png|jpeg|webp)$/.test(file.type)) {
    status.say("That file is not a PNG, JPEG or WebP picture.", "error");
    return;
  }
  if (el.sketchPreview.dataset.src) URL.revokeObjectURL(el.sketchPreview.dataset.src);
  sketch = file;
  const src = URL.createObjectURL(file);
  el.sketchPreview.src = src;
  el.sketchPreview.dataset.src = src;
  el.sketch.hidden = false;
  el.dropZone.dataset.has = "picture";
  status.say(`The next picture starts from ${file.name || "your sketch"} (strength ${el.strength.value}).`, "info");
}

function clearSketch() {
  if (el.sketchPreview.dataset.src) URL.revokeObjectURL(el.sketchPreview.dataset.src);
  delete el.sketchPreview.dataset.src;
  sketch = null;
  el.imageIn.value = "";
  el.sketch.hidden = true;
  delete el.dropZone.dataset.has;
}

el.imageIn.addEventListener("change", () => setSketch(el.imageIn.files[0]));
el.sketchClear.addEventListener("click", clearSketch);
el.strength.addEventListener("input", () => {
  el.strengthValue.textContent = Number(el.strength.value).toFixed(2);
});
// A sketch dropped anywhere on the page counts, not only on the drop zone.
document.addEventListener("dragover", (event) => {
  if (event.dataTransfer && [...event.dataTransfer.types].includes("Files")) {
    event.preventDefault();
    el.dropZone.dataset.over = "true";
  }
});
document.addEventListener("dragleave", (event) => {
  if (!event.relatedTarget) delete el.dropZone.dataset.over;
});
document.addEventListener("drop", (event) => {
  if (!event.dataTransfer || !event.dataTransfer.files.length) return;
  event.preventDefault();
  delete el.dropZone.dataset.over;
  setSketch(event.dataTransfer.files[0]);
});

// ---- push to talk ---------------------------------------------------------------

let speaking = null; // the take being recorded: {target, starting, live}

function beginTake(target) {
  if (speaking) return;
  const session = { target, live: null, take: null };
  speaking = session;
  el.transcript.textContent = "";
  status.say("Listening… let go when you are done.", "listening");
  session.starting = startTake({ onPcm: (pcm) => session.live && session.live.send(pcm) }).then((take) => {
    session.take = take;
    if (take.rate) {
      session.live = new LiveWords(api, take.rate, (words) => {
        el.transcript.textContent = words;
      });
    }
    return take;
  });
  session.starting.catch((error) => {
    status.fail(error);
    if (speaking === session) speaking = null;
  });
}

async function endTake() {
  const session = speaking;
  if (!session) return;
  speaking = null;
  let recorded;
  try {
    const take = await session.starting;
    recorded = await take.stop();
  } catch (error) {
    if (session.take) status.fail(error); // a failed start has said why already
    return;
  } finally {
    if (session.live) session.live.close();
  }
  if (session.target === "script") {
    dictateScript(recorded).catch((error) => status.fail(error));
  } else {
    draw({ take: recorded, ...options(), ...pictureIn(), seed: nextSeed() });
  }
}

async function dictateScript(recorded) {
  status.say("Hearing the script…", "busy");
  const form = new FormData();
  form.append("file", recorded.blob, recorded.filename);
  const { text } = await api.json("/v1/audio/transcriptions", { method: "POST", form });
  if (!text.trim()) throw new PageProblem("no_speech", "No speech was heard. Hold the button while you read the script, then let go.");
  el.script.value = el.script.value.trim() ? `${el.script.value.trim()}\n${text.trim()}` : text.trim();
  el.transcript.textContent = text.trim();
  status.say("The script is in; edit it if you like, then make the sheet.", "ready");
}

function holdToTalk(button, target) {
  let held = false;
  const press = () => {
    if (held) return;
    held = true;
    button.setAttribute("aria-pressed", "true");
    beginTake(target);
  };
  const release = () => {
    if (!held) return;
    held = false;
    button.setAttribute("aria-pressed", "false");
    endTake();
  };
  button.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault(); // no text selection, no focus ring flash on touch
    button.setPointerCapture(event.pointerId);
    press();
  });
  button.addEventListener("pointerup", release);
  button.addEventListener("pointercancel", release);
  button.addEventListener("lostpointercapture", release);
  button.addEventListener("contextmenu", (event) => event.preventDefault()); // a long press on touch
  button.addEventListener("keydown", (event) => {
    if ((event.code === "Space" || event.key === "Enter") && !event.repeat) {
      event.preventDefault();
      event.stopPropagation();
      press();
    }
  });
  button.addEventListener("keyup", (event) => {
    if (event.code === "Space" || event.key === "Enter") {
      event.preventDefault();
      event.stopPropagation();
      release();
    }
  });
  return { press, release };
}

const talk = holdToTalk(el.talk, "prompt");
holdToTalk(el.talkScript, "script");

// The space bar anywhere but in a field or on another control talks.
function spaceTalks(event) {
  const target = event.target;
  if (event.code !== "Space" || event.ctrlKey || event.altKey || event.metaKey) return false;
  if (target instanceof HTMLElement && target.closest("input, textarea, select, button, a, summary, [contenteditable]")) return false;
  return true;
}
document.addEventListener("keydown", (event) => {
  if (!spaceTalks(event)) return;
  event.preventDefault(); // no page scroll
  if (!event.repeat) talk.press();
});
document.addEventListener("keyup", (event) => {
  if (spaceTalks(event)) talk.release();
});

// ---- the picture, the history, the storyboard -------------------------------------

const pictures = new PictureView(api, status, {
  onTranscript(transcript, prompt) {
    el.transcript.textContent = transcript;
    el.prompt.value = prompt;
  },
  onDone(job) {
    history.add(job);
  },
});

const history = new History(api, {
  onSelect(job) {
    if (job.images && job.images.length) pictures.show(job).catch((error) => status.fail(error));
  },
  onReuse(job) {
    el.prompt.value = job.prompt || "";
    el.negative.value = job.negative_prompt || "";
    el.size.value = job.size || "";
    el.steps.value = job.steps ? String(job.steps) : "";
    el.keepSeed.checked = job.seed !== null && job.seed !== undefined;
    status.say(`Its settings are in the form${el.keepSeed.checked ? `, seed ${job.seed} kept` : ""}: change the words if you like, then draw it.`, "ready");
    el.prompt.focus();
  },
});

new Storyboard(api, status, {
  options,
  onShot(job) {
    history.add(job);
  },
});

connect();
