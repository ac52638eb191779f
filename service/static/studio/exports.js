import { fetchBlob, gql } from "./api.js";
import { field, h, replace, table } from "./dom.js";
import { act, onLeave, statusText } from "./ui.js";

const EXPORT_FIELDS = "id status done total sizeBytes provenanceHash downloadUrl error createdAt";
const FINISHED = new Set(["COMPLETED", "FAILED"]);

/** Save a Blob under a file name (the archive route needs the Bearer header, so no plain link). */
function save(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

function downloadButton(job) {
  const button = h("button", { type: "button", class: "secondary", "data-export": job.id }, "Download ZIP");
  button.addEventListener("click", () => act(button, async () => {
    save(await fetchBlob(job.downloadUrl), `${job.id}.zip`);
  }));
  return button;
}

function rows(jobs) {
  return jobs.map((job) => [
    h("code", {}, job.id), statusText(job.status), `${job.done} / ${job.total}`,
    job.sizeBytes === null ? "" : `${(job.sizeBytes / 1024).toFixed(1)} KiB`,
    job.status === "COMPLETED" ? downloadButton(job) : job.error || "",
  ]);
}

export async function exportsSection(collectionId) {
  const list = h("div", { id: "exports", "aria-live": "polite" });
  let timer = null;
  onLeave(() => clearTimeout(timer));
  const render = (jobs) => replace(list, jobs.length
    ? table("This collection's exports, newest first", ["Export", "Status", "Pieces", "Size", ""], rows(jobs))
    : h("p", {}, "No exports yet."));
  const load = async () => {
    const { exports } = await gql(`query Exports($id: ID!) { exports(collectionId: $id, first: 10) { edges { node { ${EXPORT_FIELDS} } } } }`, { id: collectionId });
    const jobs = exports.edges.map((e) => e.node);
    render(jobs);
    clearTimeout(timer);
    if (jobs.some((j) => !FINISHED.has(j.status))) timer = setTimeout(() => load().catch(() => {}), 500);
  };
  const shuffle = h("input", { type: "checkbox", name: "shuffle" });
  const prompt = h("input", { type: "checkbox", name: "includePrompt", checked: true });
  const start = h("button", { type: "button", id: "start-export" }, "Export accepted pieces");
  start.addEventListener("click", () => act(start, async () => {
    await gql(`mutation Export($id: ID!, $options: ExportOptionsInput) { exportCollection(collectionId: $id, options: $options) { id } }`,
      { id: collectionId, options: { shuffle: shuffle.checked, includePrompt: prompt.checked } });
    await load();
  }));
  await load();
  return h("section", { class: "card", "aria-labelledby": "exports-heading" },
    h("h2", { id: "exports-heading" }, "Exports"),
    h("p", { class: "hint" }, "A ZIP of the accepted, not excluded pieces: images (or texts), metadata and a manifest."),
    h("div", { class: "row" }, field("Shuffle numbers", shuffle), field("Include the prompt", prompt), h("div", {}, start)),
    list);
}
