// Every failure the page can meet, as one sentence for the status line.

import { ApiError } from "./api.js";

/** A problem the page itself found (the microphone, a take), with its code. */
export class PageProblem extends Error {
  constructor(code, message) {
    super(message);
    this.name = "PageProblem";
    this.code = code;
  }
}

const MICROPHONE = {
  NotAllowedError: "The browser did not allow the microphone. Allow it for this page (the icon in the address bar) and hold the button again, or type the prompt.",
  SecurityError: "The browser did not allow the microphone. Allow it for this page (the icon in the address bar) and hold the button again, or type the prompt.",
  NotFoundError: "No microphone was found. Plug one in, or type the prompt.",
  NotReadableError: "The microphone is in use by another program, or failed to start. Close the other program, or type the prompt.",
  OverconstrainedError: "The microphone could not record mono audio. Try another microphone, or type the prompt.",
};

export const INSECURE_PAGE =
  "The browser allows the microphone only on a secure page: open voicebrush on localhost, or over https (behind a proxy). Typing a prompt works here.";

/** The sentence for an error from the API, the microphone or the page. */
export function sentence(error, { hadToken = false } = {}) {
  if (error instanceof PageProblem) return error.message;
  if (error instanceof ApiError) return apiSentence(error, hadToken);
  if (error && MICROPHONE[error.name]) return MICROPHONE[error.name];
  if (error && error.name === "AbortError") return "Stopped.";
  return `Something went wrong in the page: ${error && error.message ? error.message : error}`;
}

function apiSentence(error, hadToken) {
  if (error.status === 0) return "The daemon did not answer. Is it still running? Reload the page once it is.";
  if (error.status === 401) {
    return hadToken
      ? "That token was not accepted. Check it with whoever runs the daemon, and enter it again."
      : "This daemon needs its token: enter it above to go on.";
  }
  if (error.status === 429) {
    const wait = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : " Try again shortly.";
    if (error.code === "too_many_takes") return `Too many people are speaking to the daemon right now.${wait}`;
    return `The daemon's queue is full.${wait}`;
  }
  if (error.code === "loading") return "The daemon is still loading its models. It will be ready in a moment.";
  if (error.code === "shutting_down") return "The daemon is shutting down.";
  if (error.code === "no_speech") return "No speech was heard. Hold the button (or the space bar) while you speak, then let go.";
  if (error.code === "forbidden_origin" || error.code === "forbidden_host") return `The daemon refused this page: ${error.message}`;
  return error.message.endsWith(".") ? error.message : `${error.message}.`;
}

/** The sentence for a job that ended without a picture (its record's error). */
export function jobSentence(job) {
  if (job.status === "cancelled") return "Cancelled.";
  const error = job.error || {};
  return sentence(new ApiError(200, error.code || "failed", error.message || "The job failed."));
}
