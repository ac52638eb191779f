import { fetchBlob, gql } from "./api.js";
import { field, h, replace, table } from "./dom.js";
import { act, onLeave, statusText } from "./ui.js";

const EXPORT_FIELDS = "id status done total sizeBytes provenanceHash downloadUrl error createdAt options { nameTemplate description shuffle shuffleSeed includePrompt imageBaseUri }";
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

function optionsText(o) {
  return [`name "${o.nameTemplate}"`, o.description === null ? null : `description "${o.description}"`,
    o.shuffle ? `shuffled (seed ${o.shuffleSeed})` : "by index", o.includePrompt ? "with prompt" : null,
    o.imageBaseUri ? `images at ${o.imageBaseUri}` : null].filter(Boolean).join(", ");
}

function rows(jobs) {
  return jobs.map((job) => [
    h("code", {}, job.id), statusText(job.status), `${job.done} / ${job.total}`,
    job.sizeBytes === null ? "" : `${(job.sizeBytes / 1024).toFixed(1)} KiB`,
    h("span", { class: "export-options" }, optionsText(job.options)),
    job.provenanceHash ? h("code", { class: "provenance", title: "SHA-256 over every image's SHA-256, in number order" }, job.provenanceHash) : "",
    job.status === "COMPLETED" ? downloadButton(job) : job.error || "",
  ]);
}

export async function exportsSection(collectionId) {
  const list = h("div", { id: "exports", "aria-live": "polite" });
  let timer = null;
  onLeave(() => clearTimeout(timer));
  const render = (jobs) => replace(list, jobs.length
    ? table("This collection's exports, newest first", ["Export", "Status", "Pieces", "Size", "Options", "Provenance hash", ""], rows(jobs))
    : h("p", {}, "No exports yet."));
  const load = async () => {
    const { exports } = await gql(`query Exports($id: ID!) { exports(collectionId: $id, first: 10) { edges { node { ${EXPORT_FIELDS} } } } }`, { id: collectionId });
    const jobs = exports.edges.map((e) => e.node);
    render(jobs);
    clearTimeout(timer);
    if (jobs.some((j) => !FINISHED.has(j.status))) timer = setTimeout(() => load().catch(() => {}), 500);
  };
  const shuffle = h("input", { type: "checkbox", name: "shuffle" });
  const shuffleSeed = h("input", { type: "number", name: "shuffleSeed", min: 0, max: 2147483647, placeholder: "random" });
  const prompt = h("input", { type: "checkbox", name: "includePrompt", checked: true });
  const nameTemplate = h("input", { name: "nameTemplate", maxlength: 200, value: "{collection} #{number}" });
  const description = h("input", { name: "exportDescription", maxlength: 2000, placeholder: "the collection's" });
  const imageBaseUri = h("input", { name: "imageBaseUri", maxlength: 500, placeholder: "ipfs://<cid>/" });
  const start = h("button", { type: "button", id: "start-export" }, "Export accepted pieces");
  start.addEventListener("click", () => act(start, async () => {
    const options = {
      shuffle: shuffle.checked, includePrompt: prompt.checked, nameTemplate: nameTemplate.value,
      imageBaseUri: imageBaseUri.value, shuffleSeed: shuffleSeed.value === "" ? null : Number(shuffleSeed.value),
      description: description.value === "" ? null : description.value,
    };
    await gql(`mutation Export($id: ID!, $options: ExportOptionsInput) { exportCollection(collectionId: $id, options: $options) { id } }`,
      { id: collectionId, options });
    await load();
  }));
  await load();
  return h("section", { class: "card", "aria-labelledby": "exports-heading" },
    h("h2", { id: "exports-heading" }, "Exports"),
    h("p", { class: "hint" }, "A ZIP of the accepted, not excluded pieces: images (or texts), metadata and a manifest."),
    h("div", { class: "row" }, field("Name template", nameTemplate, "{number} (required) and {collection} are replaced."),
      field("Description", description), field("Image base URI", imageBaseUri, "Each image becomes <base>NNNN.png; empty: the path inside the archive.")),
    h("div", { class: "row" }, field("Shuffle numbers", shuffle), field("Shuffle seed", shuffleSeed), field("Include the prompt", prompt), h("div", {}, start)),
    list);
}
