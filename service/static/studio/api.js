// The studio's only way to Cook: the public GraphQL API (HTTP and graphql-transport-ws) and the
// two authenticated download routes. Every failure becomes an ApiError with the API's message
// and code, so the page can always show what the API said.

const TOKEN_KEY = "cook.token";

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  signIn(token) { sessionStorage.setItem(TOKEN_KEY, token); },
  signOut() { sessionStorage.removeItem(TOKEN_KEY); },
};

export class ApiError extends Error {
  constructor(message, code, extensions = {}) {
    super(message);
    this.code = code;
    this.extensions = extensions;
  }
}

function authorization() {
  const token = session.token;
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function fromErrors(errors) {
  const first = errors[0];
  const ext = first.extensions || {};
  const problems = (ext.problems || []).map((p) => `${p.path}: ${p.message}`);
  const more = errors.slice(1).map((e) => e.message);
  const message = [first.message, ...problems.filter((p) => !first.message.includes(p)), ...more].join("; ");
  return new ApiError(message, ext.code || "UNKNOWN", ext);
}

// Trusted documents (docs/graphql-clients.md): every document of this source is in
// persisted-documents.json (bin/studio-manifest), so the studio sends its id, the SHA-256 of
// its text. Where the browser cannot hash (no crypto.subtle outside a secure context), or a
// server does not know the id (a manifest older than this source), it sends the text.
const documentIds = new Map();

async function documentId(query) {
  if (!globalThis.crypto?.subtle) return null;
  if (!documentIds.has(query)) {
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(query));
    const hex = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
    documentIds.set(query, `sha256:${hex}`);
  }
  return documentIds.get(query);
}

async function post(payload) {
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", ...authorization() },
      body: JSON.stringify(payload),
    });
  } catch (error) {
    throw new ApiError(`Cook cannot be reached (${error.message})`, "NETWORK");
  }
  try {
    return await response.json();
  } catch {
    throw new ApiError(`HTTP ${response.status} ${response.statusText}: not a GraphQL answer`, `HTTP_${response.status}`);
  }
}

/** Run one GraphQL operation over HTTP; resolves with its data or throws an ApiError. */
export async function gql(query, variables = {}) {
  const id = await documentId(query);
  let body = id ? await post({ documentId: id, variables }) : null;
  if (!body || body.errors?.[0]?.extensions?.code === "PERSISTED_QUERY_NOT_FOUND") {
    body = await post({ query, variables });
  }
  if (body.errors && body.errors.length) throw fromErrors(body.errors);
  return body.data;
}

/** GET an authenticated route (media, export archives) as a Blob. */
export async function fetchBlob(url) {
  let response;
  try {
    response = await fetch(url, { headers: authorization() });
  } catch (error) {
    throw new ApiError(`Cook cannot be reached (${error.message})`, "NETWORK");
  }
  if (!response.ok) {
    let body = {};
    try { body = await response.json(); } catch { /* not JSON */ }
    const message = body.message || (body.errors && body.errors[0].message) || `HTTP ${response.status}`;
    const code = body.code || (body.errors && body.errors[0].extensions?.code) || `HTTP_${response.status}`;
    throw new ApiError(message, code);
  }
  return response.blob();
}

const CLOSED_FOR_AUTH = new Set([4401, 4403]);

/**
 * Follow a subscription over graphql-transport-ws, resuming after a dropped connection.
 * `variablesAt(lastSeq)` gives the variables for each (re)connection; `seqOf(data)` tells which
 * sequence number a message carries (null: do not move the resume point).
 * Returns { close() }.
 */
export function subscribe(query, { variablesAt, seqOf, next, error, complete, state }) {
  let socket = null;
  let lastSeq = null;
  let stopped = false;
  let failures = 0;
  let timer = null;

  const stop = () => {
    stopped = true;
    clearTimeout(timer);
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000, "done");
  };

  const connect = () => {
    if (stopped) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${location.host}/graphql`, "graphql-transport-ws");
    const ws = socket;
    state(lastSeq === null ? "connecting" : `reconnecting after seq ${lastSeq}`);
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "connection_init", payload: authorization().Authorization ? { authorization: authorization().Authorization } : {} }));
    };
    ws.onmessage = (message) => {
      const msg = JSON.parse(message.data);
      if (msg.type === "connection_ack") {
        ws.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query, variables: variablesAt(lastSeq) } }));
        state(lastSeq === null ? "live" : `live, resumed after seq ${lastSeq}`);
      } else if (msg.type === "ping") {
        ws.send(JSON.stringify({ type: "pong" }));
      } else if (msg.type === "next") {
        failures = 0;
        if (msg.payload.errors && msg.payload.errors.length) {
          stop();
          error(fromErrors(msg.payload.errors));
          return;
        }
        const seq = seqOf(msg.payload.data, lastSeq);
        if (seq !== null) lastSeq = seq;
        next(msg.payload.data);
      } else if (msg.type === "error") {
        stop();
        error(fromErrors(msg.payload));
      } else if (msg.type === "complete") {
        stop();
        state("ended");
        complete();
      }
    };
    ws.onclose = (event) => {
      if (stopped || ws !== socket) return;
      if (CLOSED_FOR_AUTH.has(event.code)) {
        stopped = true;
        error(new ApiError(`the live connection was refused (${event.reason || "the token was refused or has expired"}); sign in again`, "UNAUTHENTICATED"));
        return;
      }
      failures += 1;
      const delay = Math.min(250 * 2 ** (failures - 1), 5000);
      state(`connection lost; retrying in ${(delay / 1000).toFixed(1)} s`);
      timer = setTimeout(connect, delay);
    };
  };

  connect();
  return {
    close: stop,
    /** Drop the connection as a network failure would (it then resumes from the last seq). */
    drop() { if (socket) socket.close(4000, "dropped by the studio"); },
    get lastSeq() { return lastSeq; },
  };
}

/**
 * Run one GraphQL operation as a multipart request (the `Upload` scalar): `files` maps a
 * variable name to a File or Blob (sent in place of that variable's null).
 */
export async function gqlUpload(query, variables, files) {
  const names = Object.keys(files);
  const form = new FormData();
  form.append("operations", JSON.stringify({ query, variables: { ...variables, ...Object.fromEntries(names.map((n) => [n, null])) } }));
  form.append("map", JSON.stringify(Object.fromEntries(names.map((n, i) => [String(i), [`variables.${n}`]]))));
  names.forEach((n, i) => form.append(String(i), files[n], files[n].name || n));
  let response;
  try {
    response = await fetch("/graphql", { method: "POST", headers: { Accept: "application/json", ...authorization() }, body: form });
  } catch (error) {
    throw new ApiError(`Cook cannot be reached (${error.message})`, "NETWORK");
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`HTTP ${response.status} ${response.statusText}: not a GraphQL answer`, `HTTP_${response.status}`);
  }
  if (body.errors && body.errors.length) throw fromErrors(body.errors);
  return body.data;
}
