import { gql, subscribe } from "./api.js";
import { h, replace } from "./dom.js";
import { act, onLeave, showError, statusText } from "./ui.js";
import { lineChart } from "./charts.js";

const NUMBERS = "inFlight retrying completed accepted rejected pendingReview failed cancelled live costUsd";
const COOK = `query Cook($id: ID!) { cook(id: $id) {
  id collectionId status reason count maxConcurrent maxFailures seed createdAt endedAt lastSeq numbers { ${NUMBERS} } } }`;
const PROGRESS = `subscription Progress($cookId: ID!, $afterSeq: Int) {
  cookProgress(cookId: $cookId, afterSeq: $afterSeq) {
    seq status count maxConcurrent numbers { ${NUMBERS} }
    event { seq type at index attempt detail } } }`;
const ENDED = new Set(["COMPLETED", "FAILED", "CANCELLED"]);
const EVENTS = `query CookEvents($id: ID!, $after: Int!) { cook(id: $id) { events(afterSeq: $after, first: 500) { seq type at } } }`;
const LOG_PAGES = 40; // at most 20,000 events read back for the chart
const SERIES = [
  { key: "completed", name: "completed", cls: "s-completed" },
  { key: "failed", name: "failed", cls: "s-failed" },
  { key: "inFlight", name: "in flight", cls: "s-inflight" },
];

/** The chart's points from the event log: each event moves the counts it names. */
export function pointsFromEvents(events, startedAt) {
  const n = { completed: 0, failed: 0, inFlight: 0 };
  const points = [{ t: new Date(startedAt).getTime(), values: { ...n } }];
  for (const e of events) {
    if (e.type === "PIECE_SUBMITTED") n.inFlight += 1;
    else if (e.type === "PIECE_COMPLETED") { n.completed += 1; n.inFlight = Math.max(0, n.inFlight - 1); }
    else if (e.type === "PIECE_FAILED") { n.failed += 1; n.inFlight = Math.max(0, n.inFlight - 1); }
    else if (e.type === "PIECE_RETRYING") n.inFlight = Math.max(0, n.inFlight - 1);
    else if (e.type === "COOK_CANCELLED" || e.type === "COOK_COMPLETED" || e.type === "COOK_FAILED") n.inFlight = 0;
    else continue;
    points.push({ t: new Date(e.at).getTime(), values: { ...n } });
  }
  return points;
}

/** Pieces made per second over the cook's life (its end, or now): finite for a finished cook. */
export function rate(made, createdAt, endedAt) {
  const seconds = ((endedAt ? new Date(endedAt) : new Date()) - new Date(createdAt)) / 1000;
  if (!(seconds > 0.5) || made === 0) return "—";
  const perSecond = made / seconds;
  return perSecond >= 1 ? `${perSecond.toFixed(1)} pieces/s` : `${(perSecond * 60).toFixed(1)} pieces/min`;
}

export async function cookView(view, id) {
  const { cook } = await gql(COOK, { id });
  let endedAt = cook.endedAt;
  const numbers = {};
  const number = (key, label) => {
    numbers[key] = h("dd", { id: `n-${key}` });
    return h("div", {}, h("dt", {}, label), numbers[key]);
  };
  const status = h("span", { id: "cook-status" });
  const bar = h("progress", { id: "cook-bar", max: cook.count, value: 0, "aria-labelledby": "bar-label" });
  const barLabel = h("p", { id: "bar-label" });
  const link = h("span", { id: "link-state", class: "hint" });
  const events = h("ol", { class: "events", id: "events", tabindex: 0, "aria-label": "Events, oldest first" });
  const pause = h("button", { type: "button", id: "pause" }, "Pause");
  const resume = h("button", { type: "button", id: "resume" }, "Resume");
  const cancel = h("button", { type: "button", id: "cancel", class: "secondary" }, "Cancel cook");
  const resumed = h("span", { id: "resumed", class: "hint" });
  let resumes = 0;
  const reconnect = h("button", { type: "button", id: "reconnect", class: "secondary" }, "Reconnect");

  // The chart: the event log read back first (the cook's past), then each live message.
  const chartBox = h("div", { id: "cook-chart", class: "chart-box" });
  let points = [];
  let logSeq = 0; // events up to here came from the log
  let drawTimer = null;
  const draw = () => {
    drawTimer = null;
    replace(chartBox, lineChart({ title: "Pieces completed, failed and in flight over the cook's life", points, series: SERIES }));
  };
  const redraw = () => { if (!drawTimer) drawTimer = setTimeout(draw, 200); };
  const readLog = async () => {
    const events = [];
    for (let page = 0; page < LOG_PAGES; page++) {
      const { cook: c } = await gql(EVENTS, { id, after: logSeq });
      events.push(...c.events);
      if (c.events.length) logSeq = c.events[c.events.length - 1].seq;
      if (c.events.length < 500) break;
    }
    const live = points;
    points = [...pointsFromEvents(events, cook.createdAt), ...live.filter((p) => p.seq > logSeq)];
    document.getElementById("chart-source").textContent = ENDED.has(current.status)
      ? `From the event log: ${events.length} events.`
      : `From the event log (${events.length} events), then live from cookProgress.`;
    draw();
  };
  onLeave(() => clearTimeout(drawTimer));

  let current = cook;
  const show = (p) => {
    current = p;
    replace(status, statusText(p.status));
    const n = p.numbers;
    const done = n.completed - n.rejected;
    for (const [key, value] of Object.entries({ ...n, done })) if (numbers[key]) numbers[key].textContent = key === "costUsd" ? `$${value}` : String(value);
    numbers.rate.textContent = rate(n.completed, cook.createdAt, ENDED.has(p.status) ? endedAt : null);
    bar.max = p.count;
    bar.value = Math.min(done, p.count);
    barLabel.textContent = `${done} of ${p.count} done: ${n.completed} made, ${n.accepted} accepted, ${n.rejected} rejected, ${n.pendingReview} awaiting review`;
    setButtons(p.status);
  };

  const setButtons = (state) => {
    pause.disabled = state !== "RUNNING";
    resume.disabled = state !== "PAUSED";
    cancel.disabled = !(state === "RUNNING" || state === "PAUSED");
  };
  // The buttons follow the cook's status (the answer's, then the feed's), so they are not
  // handed to act(), which would enable them again afterwards.
  const control = (button, mutation) => button.addEventListener("click", () => {
    button.disabled = true;
    act(null, async () => {
      const data = await gql(`mutation Control($id: ID!) { ${mutation}(id: $id) { status } }`, { id });
      if (!ENDED.has(current.status)) {
        current = { ...current, status: data[mutation].status };
        replace(status, statusText(current.status));
      }
    }).finally(() => setButtons(current.status));
  });
  control(pause, "pauseCook");
  control(resume, "resumeCook");
  control(cancel, "cancelCook");

  replace(view,
    h("p", {}, h("a", { href: `#/collections/${cook.collectionId}` }, "← Collection")),
    h("h1", {}, "Cook ", h("code", {}, cook.id)),
    h("section", { class: "card", "aria-labelledby": "progress-heading" },
      h("h2", { id: "progress-heading" }, "Progress: ", status),
      h("p", { class: "hint" }, `${cook.count} pieces, at most ${cook.maxConcurrent} in flight, seed ${cook.seed}, fails at ${cook.maxFailures} failures.`, cook.reason ? ` ${cook.reason}` : ""),
      barLabel, bar,
      h("dl", { class: "numbers" }, number("done", "Done"), number("inFlight", "In flight"), number("retrying", "Retrying"),
        number("failed", "Failed"), number("rejected", "Rejected"), number("costUsd", "Cost"), number("rate", "Rate")),
      h("div", { class: "actions" }, pause, resume, cancel, h("a", { href: `#/cooks/${id}/review`, id: "review-link" }, "Review pieces →"))),
    h("section", { class: "card", "aria-labelledby": "chart-heading" },
      h("h2", { id: "chart-heading" }, "Over time"),
      h("p", { class: "hint", id: "chart-source" }),
      chartBox),
    h("section", { class: "card", "aria-labelledby": "events-heading" },
      h("h2", { id: "events-heading" }, "Events"),
      h("p", {}, "Live connection: ", link, " ", reconnect, " ", resumed),
      events));
  show(cook);

  const feed = subscribe(PROGRESS, {
    variablesAt: (lastSeq) => ({ cookId: id, afterSeq: lastSeq }),
    // The first snapshot fixes where to resume from; after that only events move it.
    seqOf: (data, last) => (data.cookProgress.event ? data.cookProgress.seq : last === null ? data.cookProgress.seq : null),
    next: async (data) => {
      const p = data.cookProgress;
      if (p.event) {
        const e = p.event;
        events.append(h("li", { value: e.seq, "data-seq": e.seq }, `${e.type.toLowerCase()}${e.index === null ? "" : ` piece ${e.index}`}${e.detail ? `: ${e.detail}` : ""}`));
        events.scrollTop = events.scrollHeight;
      }
      if (p.event && p.event.seq > logSeq) {
        points.push({ seq: p.event.seq, t: new Date(p.event.at).getTime(), values: { completed: p.numbers.completed, failed: p.numbers.failed, inFlight: p.numbers.inFlight } });
        redraw();
      }
      if (ENDED.has(p.status) && !endedAt) {
        try { endedAt = (await gql(COOK, { id })).cook.endedAt; } catch (error) { showError(error); }
      }
      show(p);
    },
    error: (error) => { showError(error); link.textContent = "stopped"; },
    complete: () => { link.textContent = "ended (the cook is over)"; reconnect.disabled = true; },
    state: (text) => {
      link.textContent = text;
      if (text.startsWith("live, resumed")) resumed.textContent = `Resumed ${++resumes} time${resumes === 1 ? "" : "s"}, last ${text.slice(6)}.`;
    },
  });
  reconnect.addEventListener("click", () => feed.drop());
  readLog().catch(showError);
  const ticker = setInterval(() => {
    if (!ENDED.has(current.status)) numbers.rate.textContent = rate(current.numbers.completed, cook.createdAt, null);
  }, 1000);
  onLeave(() => { feed.close(); clearInterval(ticker); });
}
