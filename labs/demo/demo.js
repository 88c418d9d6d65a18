// The demo page's client: asks the gateway over SSE or the WebSocket chat and shows each answer
// as it streams, with its figures, and every problem object by its `code`.
// It never retries a request by itself: a retryable error offers a button once the wait is
// over. A dropped SSE stream is resumed instead (GET /v1/ask/stream/{id} with Last-Event-ID):
// not a retry, the same answer continues and the model is not called again.
"use strict";

const KEY_STORAGE = "gateway-api-key";
const MAX_RESUMES = 3; // reconnects of one dropped answer before the page gives up
const PASTE = "__paste__";
const $ = (id) => document.getElementById(id);

// What each problem `code` means for the person in front of the page.
const PROBLEM_TEXT = {
  rate_limited: "Too many requests: wait, then try again.",
  quota_exceeded: "This API key used up its tokens for the minute.",
  stream_timeout: "The answer reached the stream's time limit; the part that arrived is kept above.",
  idle_timeout: "The model went silent mid-answer; the part that arrived is kept above.",
  model_timeout: "The model did not start answering in time.",
  model_error: "The model failed while answering.",
  request_too_large: "The request is larger than the gateway accepts: shorten the pasted document.",
  max_tokens_exceeded: "Max tokens is above the gateway's cap: lower it.",
  prompt_too_long: "Question and document are longer than the prompt limit.",
  busy: "An answer is still streaming on this connection: cancel it or wait for its end.",
  unauthorized: "The API key is missing or not known to the gateway: check the API key field.",
  overloaded: "The gateway is at capacity.",
  shutting_down: "The gateway is restarting.",
  connection_idle: "The chat connection was idle too long and was closed.",
  connection_expired: "The chat connection was open too long and was closed.",
  invalid_request: "The gateway refused the request as malformed.",
  unsupported_media_type: "The gateway refused the request's content type.",
  internal_error: "The gateway failed; quote the request id.",
  stream_expired: "The dropped answer can no longer be resumed: ask again.",
};

// WebSocket close codes the gateway uses (asyncapi.yaml), plus the browser's own 1006.
const CLOSE_TEXT = {
  1000: "closed normally",
  1001: "going away: idle or open too long",
  1006: "dropped without a close frame",
  1008: "policy violation: kept sending while rate limited",
  1009: "message too big",
  1011: "internal error",
  1012: "the gateway is restarting",
  1013: "try again later: too many connections for this key",
  4401: "unauthorized",
};

const ui = {};
let mode = "sse";
let current = null; // the answer streaming now: {turn, stop()}
let waitingUntil = 0; // while a rate-limit countdown runs, Ask waits for the person
let chat = null; // {socket, answers: Map(id -> turn), asked: number}
let pickedDocument = "api-gateway-websocket-limits"; // the person's choice survives a reload

function apiKey() {
  return ui.key.value.trim();
}

function authHeaders(extra = {}) {
  return { Authorization: `Bearer ${apiKey()}`, ...extra };
}

// --- figures of the answer being shown ----------------------------------------------------

function resetFigures() {
  for (const id of ["fig-ttft", "fig-tokens", "fig-rate", "fig-stop", "fig-input", "fig-limits"]) {
    $(id).textContent = "–";
  }
}

function showFigures(turn) {
  const a = turn.answer;
  if (a.firstTokenAt !== null) {
    $("fig-ttft").textContent = `${Math.round(a.firstTokenAt - a.sentAt)} ms`;
    const seconds = (performance.now() - a.firstTokenAt) / 1000;
    $("fig-rate").textContent = seconds > 0.05 ? (a.tokens / seconds).toFixed(1) : "–";
  }
  $("fig-tokens").textContent = String(a.tokens);
}

function showLimits(limits) {
  $("fig-limits").textContent = limits
    ? `max_tokens ${limits.max_tokens} · stream ${limits.max_stream_seconds} s · ` +
      `first token ${limits.first_token_timeout_seconds} s · idle ${limits.idle_timeout_seconds} s`
    : "not sent on the chat's start; the same as the SSE stream's";
}

// --- turns: one question and its answer ----------------------------------------------------

function newTurn(question) {
  const li = ui.template.content.firstElementChild.cloneNode(true);
  li.querySelector(".question").textContent = question;
  li.dataset.state = "waiting";
  li.answer = { sentAt: performance.now(), firstTokenAt: null, tokens: 0 };
  ui.empty.hidden = true;
  ui.turns.append(li);
  resetFigures();
  return li;
}

function appendToken(turn, text) {
  const a = turn.answer;
  turn.querySelector(".answer").append(text);
  a.tokens += 1;
  if (a.firstTokenAt === null) {
    a.firstTokenAt = performance.now();
    // Wall-clock time the first token was on screen, for whoever measures the page.
    turn.dataset.firstTokenAt = String(Date.now());
    turn.dataset.state = "streaming";
  }
  showFigures(turn);
}

function finishTurn(turn, stopReason, usage) {
  turn.dataset.state = "ended";
  turn.dataset.endedAt = String(Date.now());
  turn.dataset.stopReason = stopReason;
  turn.classList.add("ended");
  showFigures(turn);
  $("fig-stop").textContent = stopReason;
  const parts = [`stop reason: ${stopReason}`, `${turn.answer.tokens} tokens`];
  if (turn.dataset.resumes) {
    parts.push(`resumed ${turn.dataset.resumes}× after a dropped connection`);
  }
  if (usage) {
    turn.dataset.inputTokens = String(usage.input_tokens);
    $("fig-input").textContent = String(usage.input_tokens);
    parts.push(`input ${usage.input_tokens} tokens, output ${usage.output_tokens} tokens`);
  }
  turn.querySelector(".summary").textContent = parts.join(" · ");
  answerOver(turn);
}

function failTurn(turn, problem, retry) {
  turn.dataset.state = "failed";
  turn.dataset.endedAt = String(Date.now());
  turn.dataset.problemCode = problem.code;
  turn.classList.add("failed");
  showFigures(turn);
  $("fig-stop").textContent = `error: ${problem.code}`;
  const box = turn.querySelector(".problem");
  const text = box.querySelector(".problem-text");
  text.replaceChildren();
  const code = document.createElement("span");
  code.className = "code";
  code.textContent = problem.code;
  text.append(code, ` (${problem.status}) ${PROBLEM_TEXT[problem.code] || problem.title || ""}`);
  if (problem.detail) text.append(` ${problem.detail}`);
  if (problem.request_id) text.append(` Request id: ${problem.request_id}.`);
  box.hidden = false;
  if (problem.retryable && retry) offerRetry(turn, problem, retry);
  answerOver(turn);
}

// A retryable error: say how long to wait, then offer a button. Nothing is sent by itself.
function offerRetry(turn, problem, retry) {
  const countdown = turn.querySelector(".countdown");
  const button = turn.querySelector(".retry");
  button.addEventListener("click", () => {
    button.disabled = true;
    retry();
  });
  const wait = Number(problem.retry_after_seconds || 0);
  if (wait <= 0) {
    button.hidden = false;
    return;
  }
  const until = performance.now() + wait * 1000;
  waitingUntil = Math.max(waitingUntil, until);
  countdown.hidden = false;
  const tick = () => {
    const left = Math.ceil((until - performance.now()) / 1000);
    if (left > 0) {
      countdown.textContent = `You can try again in ${left} s.`;
      setTimeout(tick, Math.min(1000, until - performance.now()));
      return;
    }
    countdown.textContent = "You can try again now.";
    button.hidden = false;
    refreshButtons();
  };
  tick();
  refreshButtons();
}

function answerOver(turn) {
  if (current && current.turn === turn) current = null;
  refreshButtons();
}

function refreshButtons() {
  const waiting = performance.now() < waitingUntil;
  ui.ask.disabled = current !== null || waiting;
  ui.stop.disabled = current === null;
}

// --- the question to send -------------------------------------------------------------------

function askBody(withDocument) {
  const body = { question: ui.question.value.trim() };
  const maxTokens = ui.maxTokens.value.trim();
  if (maxTokens) body.max_tokens = Number(maxTokens);
  if (withDocument) {
    if (ui.documentSelect.value === PASTE) body.document = ui.pasted.value;
    else body.document_id = ui.documentSelect.value;
  }
  return body;
}

// A problem the page itself saw (no answer from the gateway), in the same shape.
function localProblem(code, detail) {
  return { code, status: "no response", title: "", detail, retryable: true };
}

async function problemOf(response) {
  try {
    return await response.json();
  } catch {
    return localProblem("http_" + response.status, `The gateway answered ${response.status}.`);
  }
}

// --- SSE: fetch with a streaming body reader ------------------------------------------------
// Not EventSource: it can only GET and cannot send headers, and this stream is a POST with a
// JSON body and an Authorization header. fetch gives us the body as a stream to parse.

async function askSse(body) {
  const turn = newTurn(body.question);
  const controller = new AbortController();
  current = { turn, stop: () => controller.abort() };
  refreshButtons();
  const retry = () => askSse(body);
  let response;
  try {
    response = await fetch("/v1/ask/stream", {
      method: "POST",
      headers: authHeaders({ "Content-Type": "application/json", Accept: "text/event-stream" }),
      body: JSON.stringify(body),
      signal: controller.signal,
    });
  } catch (error) {
    if (controller.signal.aborted) finishTurn(turn, "stopped (request aborted)", null);
    else failTurn(turn, localProblem("network_error", String(error)), retry);
    return;
  }
  if (!response.ok) {
    failTurn(turn, await problemOf(response), retry);
    return;
  }
  let terminal = false;
  let lastEventId = null; // the id of the last event read, for Last-Event-ID on a resume
  const onEvent = (name, data, id) => {
    if (id !== null) lastEventId = id;
    const payload = JSON.parse(data);
    if (name === "start") {
      turn.dataset.requestId = payload.request_id;
      showLimits(payload.limits);
    } else if (name === "delta") {
      appendToken(turn, payload.text);
    } else if (name === "end") {
      terminal = true;
      finishTurn(turn, payload.stop_reason, payload.usage);
    } else if (name === "error") {
      terminal = true;
      failTurn(turn, payload, retry);
    }
  };
  let stream = response.body;
  let cut = null; // why the last connection ended early
  for (let resumes = 0; ; resumes += 1) {
    try {
      await readEvents(stream, onEvent);
      cut = "The stream closed before its end event.";
    } catch (error) {
      if (controller.signal.aborted) {
        finishTurn(turn, "stopped (request aborted)", null);
        return;
      }
      cut = String(error);
    }
    if (terminal) return;
    const requestId = turn.dataset.requestId;
    if (!requestId || resumes >= MAX_RESUMES) break;
    // The connection dropped mid-answer: pick it up after the last event we have.
    try {
      const resumed = await fetch(`/v1/ask/stream/${encodeURIComponent(requestId)}`, {
        headers: authHeaders({ Accept: "text/event-stream", "Last-Event-ID": lastEventId || "0" }),
        signal: controller.signal,
      });
      if (!resumed.ok) {
        failTurn(turn, await problemOf(resumed), retry);
        return;
      }
      turn.dataset.resumes = String(resumes + 1);
      stream = resumed.body;
    } catch (error) {
      if (controller.signal.aborted) {
        finishTurn(turn, "stopped (request aborted)", null);
        return;
      }
      cut = String(error);
      break;
    }
  }
  failTurn(turn, localProblem("stream_cut", cut), retry);
}

// Parse a text/event-stream body by the standard: lines end with CRLF, LF or CR; a blank line
// dispatches the event; ":" starts a comment (the gateway's keep-alive pings).
async function readEvents(stream, onEvent) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let name = "";
  let data = [];
  let id = null; // the last event id seen: it carries over to later events, as the standard says
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const lines = buffer.split(/\r\n|\r|\n/);
    buffer = lines.pop(); // an unfinished line waits for the next chunk
    for (const line of lines) {
      if (line === "") {
        if (data.length) onEvent(name || "message", data.join("\n"), id);
        name = "";
        data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let val = colon < 0 ? "" : line.slice(colon + 1);
      if (val.startsWith(" ")) val = val.slice(1);
      if (field === "event") name = val;
      else if (field === "data") data.push(val);
      else if (field === "id") id = val; // sent back as Last-Event-ID if the stream drops
    }
  }
}

// --- WebSocket chat: ticket, then one connection for the whole conversation -----------------

async function openChat() {
  // A browser cannot put an Authorization header on a WebSocket, and a key in a URL ends up in
  // logs: the key buys a single-use ticket over HTTP, and only the ticket goes in the URL.
  const response = await fetch("/v1/chat/tickets", { method: "POST", headers: authHeaders() });
  if (!response.ok) throw await problemOf(response);
  const { url } = await response.json();
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}${url}`);
  const session = { socket, answers: new Map(), asked: 0, lastProblem: null };
  await new Promise((resolve, reject) => {
    socket.addEventListener("open", resolve, { once: true });
    socket.addEventListener("close", (event) => reject(closedProblem(event)), { once: true });
  });
  setConnection("Chat connected. Follow-up questions use this conversation.");
  socket.addEventListener("message", (event) => onChatMessage(session, event));
  socket.addEventListener("close", (event) => onChatClosed(session, event));
  return session;
}

// The problem a closed socket leaves: the gateway's own `error` sent just before it closed
// (when there was one), with the close code added; otherwise one made from the close code.
function closedProblem(event, cause) {
  const meaning = CLOSE_TEXT[event.code] || "closed";
  const closed = `The chat connection closed with code ${event.code} (${meaning})` +
    (event.reason ? `: ${event.reason}.` : ".");
  if (cause) return { ...cause, detail: `${cause.detail} ${closed}`, retryable: false };
  return { code: "socket_closed", status: `close ${event.code}`, title: "", detail: closed,
    retryable: false };
}

function onChatMessage(session, event) {
  const message = JSON.parse(event.data);
  const turn = message.id ? session.answers.get(message.id) : null;
  if (message.type === "error" && !turn) {
    // About the connection, not one answer: it is about to close, or refused an unknown id.
    const p = message.problem;
    session.lastProblem = p;
    setConnection(`${p.code}: ${PROBLEM_TEXT[p.code] || p.title} ${p.detail}`);
    return;
  }
  if (!turn) return;
  if (message.type === "start") {
    turn.dataset.requestId = message.request_id;
    showLimits(null);
    if (message.history_truncated) {
      turn.querySelector(".summary").textContent = "Earlier turns were left out of the context.";
    }
  } else if (message.type === "delta") {
    appendToken(turn, message.text);
  } else if (message.type === "end") {
    session.answers.delete(message.id);
    finishTurn(turn, message.stop_reason, message.usage);
  } else if (message.type === "error") {
    session.answers.delete(message.id);
    failTurn(turn, message.problem, turn.retry);
  }
}

function onChatClosed(session, event) {
  if (chat === session) chat = null;
  const problem = closedProblem(event, session.lastProblem);
  setConnection(`${problem.code}: ${problem.detail} The next question opens a new conversation.`);
  for (const turn of session.answers.values()) failTurn(turn, problem, null);
  session.answers.clear();
}

async function askChat(question) {
  const turn = newTurn(question);
  turn.retry = () => askChat(question);
  current = { turn, stop: null };
  refreshButtons();
  if (!chat) {
    try {
      chat = await openChat();
    } catch (problem) {
      const shown = problem.code ? problem : localProblem("network_error", String(problem));
      failTurn(turn, shown, turn.retry);
      return;
    }
  }
  const session = chat;
  session.asked += 1;
  const id = `q${session.asked}`;
  // The first question names the document; follow-ups leave it out and keep the conversation's.
  const message = { type: "ask", id, ...askBody(session.asked === 1), question };
  session.answers.set(id, turn);
  current.stop = () => session.socket.send(JSON.stringify({ type: "cancel", id }));
  session.socket.send(JSON.stringify(message));
}

function closeChat(reason) {
  if (chat) {
    const session = chat;
    chat = null;
    session.socket.close(1000, reason);
  }
}

// --- the page ------------------------------------------------------------------------------

function setConnection(text) {
  ui.connection.textContent = text;
}

async function loadDocuments() {
  const select = ui.documentSelect;
  let listing = [];
  if (apiKey()) {
    const response = await fetch("/v1/documents", { headers: authHeaders() });
    if (response.ok) {
      listing = (await response.json()).documents;
      setConnection("");
    } else {
      const p = await problemOf(response);
      setConnection(`${p.code}: ${PROBLEM_TEXT[p.code] || p.title} ${p.detail || ""}`);
    }
  } else {
    setConnection("Type the API key to list the built-in documents.");
  }
  select.replaceChildren();
  for (const doc of listing) {
    select.append(new Option(`${doc.title} (${doc.tokens} tokens)`, doc.id));
  }
  select.append(new Option("Paste a document…", PASTE));
  if ([...select.options].some((o) => o.value === pickedDocument)) select.value = pickedDocument;
  ui.pastedField.hidden = select.value !== PASTE;
}

function setMode(next) {
  mode = next;
  ui.stop.textContent = mode === "ws" ? "Cancel" : "Stop";
  ui.newConversation.hidden = mode !== "ws";
  if (mode !== "ws") closeChat("left chat mode");
  setConnection(mode === "ws" ? "Chat: the first question opens a connection." : "");
}

function submit(event) {
  event.preventDefault();
  if (ui.ask.disabled) return;
  if (!ui.question.value.trim()) {
    ui.question.focus();
    return;
  }
  if (mode === "ws") askChat(ui.question.value.trim());
  else askSse(askBody(true));
}

async function applyBehavior() {
  const status = $("presenter-status");
  const response = await fetch("/demo/fake-model", {
    method: "PUT",
    headers: authHeaders({ "Content-Type": "application/json" }),
    body: JSON.stringify({
      behavior: $("behavior").value,
      tokens_per_second: Number($("speed").value),
    }),
  });
  if (response.ok) {
    const now = await response.json();
    status.textContent = `The fake model is now ${now.behavior}, ${now.tokens_per_second} tokens/s.`;
  } else {
    const p = await problemOf(response);
    status.textContent = `${p.code}: ${PROBLEM_TEXT[p.code] || p.title} ${p.detail || ""}`;
  }
}

function start() {
  Object.assign(ui, {
    key: $("api-key"),
    form: $("ask-form"),
    ask: $("ask"),
    stop: $("stop"),
    newConversation: $("new-conversation"),
    question: $("question"),
    maxTokens: $("max-tokens"),
    documentSelect: $("document"),
    pasted: $("pasted"),
    pastedField: $("pasted-field"),
    turns: $("turns"),
    empty: $("empty"),
    connection: $("connection"),
    template: $("turn-template"),
  });
  // The key lives in this tab's sessionStorage only; it is sent in a header, never in a URL.
  ui.key.value = sessionStorage.getItem(KEY_STORAGE) || document.body.dataset.defaultKey || "";
  ui.key.addEventListener("input", () => sessionStorage.setItem(KEY_STORAGE, ui.key.value));
  ui.key.addEventListener("change", () => {
    closeChat("key changed");
    loadDocuments();
  });
  ui.form.addEventListener("submit", submit);
  ui.question.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) submit(event); // Shift+Enter: a new line
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && current && current.stop) current.stop();
  });
  ui.stop.addEventListener("click", () => current && current.stop && current.stop());
  ui.newConversation.addEventListener("click", () => {
    closeChat("new conversation");
    ui.turns.replaceChildren();
    ui.empty.hidden = false;
    resetFigures();
    setConnection("Chat: the next question opens a new conversation.");
  });
  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener("change", () => radio.checked && setMode(radio.value));
  }
  ui.documentSelect.addEventListener("change", () => {
    pickedDocument = ui.documentSelect.value;
    ui.pastedField.hidden = ui.documentSelect.value !== PASTE;
  });
  if (document.body.dataset.demoControls === "on") {
    $("presenter").hidden = false;
    $("behavior").value = document.body.dataset.fakeBehavior;
    $("speed").value = document.body.dataset.fakeTokensPerSecond;
    $("apply-behavior").addEventListener("click", applyBehavior);
  }
  setMode(document.querySelector('input[name="mode"]:checked').value);
  refreshButtons();
  loadDocuments();
}

start();
