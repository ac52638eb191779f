import { gql, subscribe } from "./api.js";
import { h, replace } from "./dom.js";
import { act, onLeave, showError, statusText } from "./ui.js";

const NUMBERS = "inFlight retrying completed accepted rejected pendingReview failed cancelled live costUsd";
const COOK = `query Cook($id: ID!) { cook(id: $id) {
  id collectionId status reason count maxConcurrent maxFailures seed createdAt endedAt lastSeq numbers { ${NUMBERS} } } }`;
const PROGRESS = `subscription Progress($cookId: ID!, $afterSeq: Int) {
  cookProgress(cookId: $cookId, afterSeq: $afterSeq) {
    seq status count maxConcurrent numbers { ${NUMBERS} }
    event { seq type at index attempt detail } } }`;
const ENDED = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

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
  const ticker = setInterval(() => {
    if (!ENDED.has(current.status)) numbers.rate.textContent = rate(current.numbers.completed, cook.createdAt, null);
  }, 1000);
  onLeave(() => { feed.close(); clearInterval(ticker); });
}
