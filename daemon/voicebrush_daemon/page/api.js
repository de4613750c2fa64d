// The daemon's HTTP API, as the page uses it: the token (asked once per tab, kept in
// sessionStorage, sent as Bearer), errors in the contract's shape, Server-Sent Events read
// with fetch (EventSource cannot send a header), and pictures fetched with the token.

const TOKEN_KEY = "voicebrush.token";

/** An answer the page cannot go on with: the daemon's error, or no answer at all. */
export class ApiError extends Error {
  constructor(status, code, message, { retryAfter = null, param = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    this.param = param;
  }

  static async from(response) {
    let error = {};
    try {
      error = (await response.json()).error || {};
    } catch {
      // not the contract's shape (a proxy's page): the status says enough
    }
    const retry = Number.parseInt(response.headers.get("Retry-After") || "", 10);
    return new ApiError(response.status, error.code || `http_${response.status}`, error.message || response.statusText, {
      retryAfter: Number.isFinite(retry) ? retry : null,
      param: error.param ?? null,
    });
  }
}

/** The path (and query) of a URL the daemon gave: fetched from this page's own origin,
 *  whatever host name the daemon built it with. */
export function localPath(url) {
  const parsed = new URL(url, location.href);
  return parsed.pathname + parsed.search;
}

export class Api {
  constructor() {
    this.token = sessionStorage.getItem(TOKEN_KEY) || "";
  }

  setToken(token) {
    this.token = token;
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  }

  headers(extra = {}) {
    const headers = new Headers(extra);
    if (this.token) headers.set("Authorization", `Bearer ${this.token}`);
    return headers;
  }

  /** fetch() with the token; resolves to the Response when it is a success, else throws ApiError. */
  async request(path, { method = "GET", json, form, signal } = {}) {
    const headers = {};
    let body;
    if (json !== undefined) {
      body = JSON.stringify(json);
      headers["Content-Type"] = "application/json";
    } else if (form !== undefined) {
      body = form; // the browser writes the multipart boundary itself
    }
    let response;
    try {
      response = await fetch(path, { method, body, headers: this.headers(headers), signal, cache: "no-store", credentials: "omit" });
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(0, "unreachable", "The daemon did not answer.");
    }
    if (!response.ok) throw await ApiError.from(response);
    return response;
  }

  async json(path, options) {
    return (await this.request(path, options)).json();
  }

  /** Server-Sent Events of a job or a storyboard: yields {event, data} until the stream ends. */
  async *events(path, signal) {
    const response = await this.request(path, { signal });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let event = "message";
    let data = [];
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value;
        let newline;
        while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
          if (line === "") {
            if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
            event = "message";
            data = [];
          } else if (line.startsWith(":")) {
            // a keep-alive comment
          } else {
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
            if (field === "event") event = text;
            else if (field === "data") data.push(text);
          }
        }
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  /** Something an <img> or a link can show: the daemon's path itself without a token; with
   *  one (which an <img> cannot send), the file fetched with it, as a blob: URL. */
  async fileUrl(url, signal) {
    const path = localPath(url);
    if (!this.token) return path;
    const response = await this.request(path, { signal });
    return URL.createObjectURL(await response.blob());
  }

  /** The Realtime transcription socket (OpenAI's dialect) for live words while speaking. A
   *  browser cannot set headers on a WebSocket: the token rides as a subprotocol, as OpenAI's
   *  browser clients send their key, never in the URL. */
  realtime() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const protocols = ["realtime"];
    if (this.token) protocols.push(`openai-insecure-api-key.${this.token}`);
    return new WebSocket(`${scheme}://${location.host}/v1/realtime?intent=transcription`, protocols);
  }
}

export function forget(url) {
  if (url && url.startsWith("blob:")) URL.revokeObjectURL(url);
}
