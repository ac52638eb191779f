import { fetchBlob, gql } from "./api.js";
import { field, h, replace } from "./dom.js";
import { act, onLeave, showError } from "./ui.js";

const PAGE_SIZES = [8, 24, 48, 96];
const BATCH = 10; // decisions sent together through reviewPieces
const IDLE_MS = 1500; // ...or this long after the last one
const PIECES = `query Pieces($collectionId: ID!, $cookId: ID, $filter: PieceFilterInput, $first: Int!, $after: String) {
  pieces(collectionId: $collectionId, cookId: $cookId, filter: $filter, order: INDEX, first: $first, after: $after) {
    edges { node { id index status review excluded output lastError traits { category name }
      outputs { contentType text url } } }
    pageInfo { hasNextPage endCursor } } }`;
const REVIEW = `mutation Review($decisions: [ReviewDecisionInput!]!) { reviewPieces(decisions: $decisions) { id review } }`;

/** A cook's pieces (`cookId`), or a whole collection's (`collectionId`), filtered by trait
 * (`traits`: {category: name}, from the URL: #/collections/<id>/gallery?Hat=Cap). */
export async function reviewView(view, { cookId = null, collectionId = null, traits = {} } = {}) {
  const cook = cookId
    ? (await gql(`query ReviewCook($id: ID!) { cook(id: $id) { id collectionId status count } }`, { id: cookId })).cook
    : { collectionId };
  const { collection } = await gql(`query ReviewTree($id: ID!) { collection(id: $id) { name traitTree { name ... on ManualCategory { traits { name } } } } }`, { id: cook.collectionId });
  const traitFilters = collection.traitTree.filter((c) => c.traits).map((c) => {
    const select = h("select", { name: `trait-${c.name}`, "data-category": c.name },
      h("option", { value: "" }, "any"), c.traits.map((t) => h("option", { value: t.name, selected: traits[c.name] === t.name }, t.name)));
    return select;
  });
  const statusFilter = h("select", { name: "status" }, ["", "COMPLETED", "RUNNING", "RETRYING", "FAILED", "CANCELLED"].map((s) => h("option", { value: s }, s ? s.toLowerCase() : "any status")));
  const reviewFilter = h("select", { name: "review" }, ["", "PENDING", "ACCEPTED", "REJECTED"].map((s) => h("option", { value: s }, s ? s.toLowerCase() : "any review")));
  const pageSize = h("select", { name: "pageSize" }, PAGE_SIZES.map((n) => h("option", { value: n, selected: n === 24 }, String(n))));
  const gallery = h("ul", { class: "gallery", id: "gallery", "aria-label": "Pieces" });
  const pageLabel = h("span", { id: "page-label" });
  const previousPage = h("button", { type: "button", class: "secondary", id: "previous-page" }, "Previous page");
  const nextPage = h("button", { type: "button", class: "secondary", id: "next-page" }, "Next page");
  const queueLabel = h("p", { id: "queue", "aria-live": "polite" });
  const saveNow = h("button", { type: "button", id: "save-now" }, "Save decisions now");
  const accept = h("button", { type: "button", id: "accept" }, "Accept (A)");
  const reject = h("button", { type: "button", id: "reject", class: "secondary" }, "Reject (R)");

  let pieces = [];
  let selected = 0;
  let cursors = [null]; // the `after` of each page seen, for going back
  let page = 0;
  let hasNext = false;
  const pending = new Map(); // pieceId -> outcome, not yet sent
  let idle = null;
  const blobUrls = [];

  const tileOf = (i) => gallery.children[i]?.querySelector(".tile");
  const describe = (p) => {
    const decided = pending.get(p.id);
    if (decided) return `${decided.toLowerCase()} (unsaved)`;
    return p.review ? p.review.toLowerCase() : p.status.toLowerCase();
  };
  const renderTile = (i) => {
    const p = pieces[i];
    const tile = tileOf(i);
    const state = pending.get(p.id) || p.review || p.status;
    tile.className = `tile decided-${state}`;
    tile.setAttribute("aria-current", i === selected ? "true" : "false");
    tile.querySelector(".state").textContent = describe(p);
    tile.querySelector(".state").className = `state review-${state}`;
    tile.setAttribute("aria-label", `Piece ${p.index}: ${describe(p)}. ${p.traits.map((t) => `${t.category} ${t.name}`).join(", ")}`);
  };
  const select = (i, focus = true) => {
    if (!pieces.length) return;
    const before = selected;
    selected = Math.max(0, Math.min(pieces.length - 1, i));
    renderTile(before);
    renderTile(selected);
    if (focus) tileOf(selected).focus();
  };
  const showQueue = () => {
    queueLabel.textContent = pending.size ? `${pending.size} decision${pending.size === 1 ? "" : "s"} not saved yet` : "All decisions saved.";
    saveNow.disabled = pending.size === 0;
  };

  const flush = async () => {
    clearTimeout(idle);
    if (!pending.size) return;
    const decisions = [...pending].map(([pieceId, outcome]) => ({ pieceId, outcome }));
    pending.clear();
    try {
      const { reviewPieces } = await gql(REVIEW, { decisions });
      const byId = new Map(reviewPieces.map((p) => [p.id, p.review]));
      pieces.forEach((p, i) => { if (byId.has(p.id)) { p.review = byId.get(p.id); renderTile(i); } });
      queueLabel.textContent = `Saved ${decisions.length} decision${decisions.length === 1 ? "" : "s"}.`;
      saveNow.disabled = pending.size === 0;
    } catch (error) {
      showError(error); // nothing was applied: reviewPieces checks every decision first
      pieces.forEach((_, i) => renderTile(i));
      showQueue();
    }
  };

  const decide = (outcome) => {
    const p = pieces[selected];
    if (!p) return;
    pending.set(p.id, outcome);
    renderTile(selected);
    showQueue();
    clearTimeout(idle);
    if (pending.size >= BATCH) flush();
    else idle = setTimeout(flush, IDLE_MS);
    select(selected + 1);
  };

  const media = async (img, url) => {
    try {
      const blobUrl = URL.createObjectURL(await fetchBlob(url));
      blobUrls.push(blobUrl);
      img.src = blobUrl;
    } catch (error) {
      img.alt = `${img.alt} (not loaded: ${error.message}, ${error.code})`;
    }
  };

  const tile = (p, i) => {
    const image = p.outputs.find((o) => o.url);
    const text = p.output ?? p.outputs.find((o) => o.text !== null)?.text ?? p.lastError ?? "";
    const body = image
      ? h("img", { alt: `Piece ${p.index}: ${p.traits.map((t) => t.name).join(", ")}` })
      : h("span", { class: "text" }, text);
    if (image) media(body, image.url);
    const el = h("button", { type: "button", class: "tile", "data-piece": p.id, "data-index": p.index, onclick: () => select(i), onfocus: () => { if (selected !== i) select(i, false); } },
      body, h("span", { class: "traits" }, p.traits.map((t) => t.name).join(" · ")), h("span", { class: "meta" }, h("span", {}, `#${p.index}`), h("span", { class: "state" })));
    return h("li", {}, el);
  };

  let loads = 0; // only the latest load may show its page (filters can change mid-flight)
  const load = async () => {
    const mine = ++loads;
    await flush();
    const filter = {};
    if (statusFilter.value) filter.status = [statusFilter.value];
    if (reviewFilter.value) filter.review = [reviewFilter.value];
    const chosen = traitFilters.filter((f) => f.value).map((f) => ({ category: f.dataset.category, name: f.value }));
    if (chosen.length) filter.traits = chosen;
    const { pieces: found } = await gql(PIECES, { collectionId: cook.collectionId, cookId, filter, first: Number(pageSize.value), after: cursors[page] });
    if (mine !== loads) return;
    for (const url of blobUrls.splice(0)) URL.revokeObjectURL(url);
    pieces = found.edges.map((e) => e.node);
    hasNext = found.pageInfo.hasNextPage;
    if (hasNext) cursors[page + 1] = found.pageInfo.endCursor;
    selected = 0;
    replace(gallery, pieces.map(tile));
    pieces.forEach((_, i) => renderTile(i));
    if (!pieces.length) gallery.append(h("li", { id: "no-pieces" }, "No pieces match."));
    pageLabel.textContent = `Page ${page + 1}${pieces.length ? `: pieces #${pieces[0].index} to #${pieces[pieces.length - 1].index}` : ""}`;
    previousPage.disabled = page === 0;
    nextPage.disabled = !hasNext;
  };

  const reload = () => act(null, load); // load itself sets the pager buttons
  statusFilter.addEventListener("change", () => { cursors = [null]; page = 0; reload(); });
  reviewFilter.addEventListener("change", () => { cursors = [null]; page = 0; reload(); });
  pageSize.addEventListener("change", () => { cursors = [null]; page = 0; reload(); });
  for (const f of traitFilters) f.addEventListener("change", () => { cursors = [null]; page = 0; reload(); });
  const turn = (by) => { previousPage.disabled = nextPage.disabled = true; page += by; reload(); };
  previousPage.addEventListener("click", () => turn(-1));
  nextPage.addEventListener("click", () => turn(1));
  saveNow.addEventListener("click", () => act(saveNow, flush));
  accept.addEventListener("click", () => decide("ACCEPTED"));
  reject.addEventListener("click", () => decide("REJECTED"));

  const keys = (event) => {
    if (event.target.closest("input, select, textarea") || event.ctrlKey || event.metaKey || event.altKey) return;
    const k = event.key;
    if (k === "a" || k === "A") decide("ACCEPTED");
    else if (k === "r" || k === "R") decide("REJECTED");
    else if (k === "ArrowRight" || k === "j") select(selected + 1);
    else if (k === "ArrowLeft" || k === "k") select(selected - 1);
    else return;
    event.preventDefault();
  };
  document.addEventListener("keydown", keys);
  onLeave(() => {
    document.removeEventListener("keydown", keys);
    flush().catch(showError);
    for (const url of blobUrls.splice(0)) URL.revokeObjectURL(url);
  });

  replace(view,
    h("p", {}, cookId ? h("a", { href: `#/cooks/${cookId}` }, "← Cook") : h("a", { href: `#/collections/${cook.collectionId}` }, "← Collection")),
    h("h1", {}, cookId ? "Review" : `Pieces of ${collection.name}`),
    h("section", { class: "card", "aria-labelledby": "filters-heading" },
      h("h2", { id: "filters-heading" }, ...(cookId ? ["Pieces of cook ", h("code", {}, cookId)] : ["Every cook's pieces"])),
      h("div", { class: "row" }, field("Status", statusFilter), field("Review", reviewFilter), field("Per page", pageSize),
        h("div", { class: "pager" }, previousPage, pageLabel, nextPage)),
      traitFilters.length ? h("div", { class: "row", id: "trait-filters" }, traitFilters.map((f) => field(f.dataset.category, f))) : null,
      h("p", { class: "keys" }, h("kbd", {}, "A"), " accept, ", h("kbd", {}, "R"), " reject, ", h("kbd", {}, "→"), " / ", h("kbd", {}, "J"), " next, ",
        h("kbd", {}, "←"), " / ", h("kbd", {}, "K"), ` previous. Decisions are saved in batches of ${BATCH} (or after a pause) through reviewPieces.`),
      h("div", { class: "actions" }, accept, reject, saveNow), queueLabel),
    gallery);
  await load();
  showQueue();
  if (pieces.length) select(0);
}
