import { ApiError, gql } from "./api.js";
import { field, h, replace, table } from "./dom.js";
import { act, navigate, onLeave, statusText } from "./ui.js";
import { exportsSection } from "./exports.js";
import { layersSection } from "./layers.js";

const EXAMPLE_TREE = {
  categories: [
    { name: "Animal", mode: "manual", traits: [
      { name: "Cat", prompt: "a cute cat", rarity: 2 },
      { name: "Owl", prompt: "a wise owl", rarity: 1 }] },
    { name: "Hat", mode: "manual", traits: [
      { name: "Top hat", prompt: "a top hat" },
      { name: "Beret", prompt: "a red beret" }] },
    { name: "id", mode: "generated", generator: { type: "range", start: 1, end: 9999, zeroPad: 4, uniqueAcrossCook: true } },
  ],
};
const EXAMPLE_TEMPLATE = { prompt: "[[Animal]] wearing [[Hat]], #[[id]]", latencyMs: 150, costMicros: 1200 };

const pretty = (value) => JSON.stringify(value, null, 2);

function parseJson(text, what) {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ApiError(`${what} is not valid JSON: ${error.message}`, "BAD_USER_INPUT");
  }
}

export async function collectionsView(view) {
  const data = await gql(`query Collections {
    collections(first: 50) { edges { node { id name totalSupply generator { kind id } createdAt } } }
    tools { id description inputs { name type required } }
  }`);
  const rows = data.collections.edges.map(({ node }) => [
    h("a", { href: `#/collections/${node.id}` }, node.name),
    String(node.totalSupply), `${node.generator.kind.toLowerCase()} ${node.generator.id}`,
    new Date(node.createdAt).toLocaleString(),
  ]);
  replace(view,
    h("h1", {}, "Collections"),
    h("section", { class: "card", "aria-labelledby": "list-heading" },
      h("h2", { id: "list-heading" }, "Your collections"),
      rows.length ? table("Your collections, newest first", ["Name", "Supply", "Generator", "Created"], rows)
        : h("p", { id: "no-collections" }, "No collections yet: create one below.")),
    createForm(data.tools));
}

/** Where a new collection's trait tree comes from: a file here, or (once it exists) a HashLips
 * project imported on the collection's page, or the tree editor there. */
const TREE_SOURCES = [
  { id: "file", label: "Trait tree file (JSON)" },
  { id: "layers", label: "HashLips layers (on the next page)" },
];

function createForm(tools) {
  const name = h("input", { name: "name", required: true, maxlength: 100, value: "Hatted animals" });
  const supply = h("input", { name: "totalSupply", type: "number", min: 1, max: 100000, required: true, value: 100 });
  const description = h("input", { name: "description", maxlength: 2000, value: "" });
  const tool = h("select", { name: "tool" }, tools.map((t) => h("option", { value: t.id, selected: t.id === "test" }, t.id)));
  const toolHint = h("p", { class: "hint", id: "tool-inputs", "aria-live": "polite" });
  const showInputs = () => {
    const chosen = tools.find((t) => t.id === tool.value);
    const inputs = chosen.inputs.map((i) => `${i.name} (${i.type.toLowerCase()}${i.required ? ", required" : ""})`).join(", ");
    replace(toolHint, chosen.description, inputs ? ` Its inputs, set in the template: ${inputs}.` : "");
  };
  tool.addEventListener("change", showInputs);
  tool.setAttribute("aria-describedby", "tool-inputs");
  showInputs();
  const source = h("select", { name: "source" }, TREE_SOURCES.map((s) => h("option", { value: s.id }, s.label)));
  const treeFile = h("textarea", { name: "traitTreeFile", rows: 12 }, pretty(EXAMPLE_TREE));
  const upload = h("input", { type: "file", accept: "application/json,.json" });
  upload.addEventListener("change", async () => {
    const [file] = upload.files;
    if (file) treeFile.value = await file.text();
  });
  const template = h("textarea", { name: "template", rows: 5 }, pretty(EXAMPLE_TEMPLATE));
  source.addEventListener("change", () => {
    const layers = source.value === "layers";
    treeFile.disabled = upload.disabled = layers;
    if (layers) {
      tool.value = tools.some((t) => t.id === "layers") ? "layers" : tool.value;
      showInputs();
      template.value = pretty({ name: "#[[id]]" });
    }
  });
  const submit = h("button", { type: "submit" }, "Create collection");
  const form = h("form", {
    id: "create-collection",
    onsubmit: (event) => {
      event.preventDefault();
      act(submit, async () => {
        const input = {
          name: name.value, totalSupply: Number(supply.value), description: description.value,
          generator: { toolId: tool.value },
          template: parseJson(template.value, "The template"),
        };
        // From layers: only a numbered range now; the import on the next page adds the rest.
        if (source.value === "layers") input.traitTree = [{ generated: { name: "id", range: { start: 1, end: Math.max(1, input.totalSupply), uniqueAcrossCook: true } } }];
        else input.traitTreeFile = parseJson(treeFile.value, "The trait tree file");
        const { createCollection } = await gql(`mutation Create($input: CreateCollectionInput!) {
          createCollection(input: $input) { id } }`, { input });
        navigate(`#/collections/${createCollection.id}`);
      });
    },
  },
  h("div", { class: "row" }, field("Name", name), field("Total supply", supply), field("Description", description)),
  h("div", { class: "row" }, field("Generator tool", tool), field("Trait tree from", source)),
  toolHint,
  field("Trait tree file", treeFile, 'The old system\'s format {"categories": [...]}: manual categories of traits {name, prompt or value, rarity or weight}, generated ones with a range.'),
  field("Or load a .json file into it", upload),
  field("Template (JSON)", template, "Each [[Category]] becomes the drawn trait's value. The tool's settings (for `test`: latencyMs, failureRate, costMicros, ...) go here too."),
  h("div", { class: "actions" }, submit));
  return h("section", { class: "card", "aria-labelledby": "create-heading" }, h("h2", { id: "create-heading" }, "New collection"), form);
}

const COLLECTION = `query Collection($id: ID!) {
  collection(id: $id) {
    id name description totalSupply version generator { kind id } template
    traitTree { name ... on ManualCategory { traits { name weight } } ... on GeneratedCategory { range { start end size } } }
    layers { width height styles { category opacity blend } layers { category trait sha256 size } }
  }
  cooks(collectionId: $id, first: 20) {
    edges { node { id status count seed createdAt numbers { completed rejected failed costUsd } } }
  }
}`;

export async function collectionView(view, id) {
  const { collection, cooks } = await gql(COLLECTION, { id });
  const tree = collection.traitTree.map((c) => [c.name,
    c.traits ? c.traits.map((t) => `${t.name} (${t.weight})`).join(", ") : `${c.range.start} to ${c.range.end} (${c.range.size} values)`]);
  replace(view,
    h("p", {}, h("a", { href: "#/" }, "← Collections")),
    h("h1", {}, collection.name),
    h("section", { class: "card", "aria-labelledby": "about-heading" },
      h("h2", { id: "about-heading" }, "About"),
      h("p", {}, `Supply ${collection.totalSupply} · generator ${collection.generator.kind.toLowerCase()} `, h("code", {}, collection.generator.id), ` · version ${collection.version}`),
      collection.description ? h("p", {}, collection.description) : null,
      table("Trait tree, in draw order", ["Category", "Traits or range"], tree),
      h("h3", {}, "Template"), h("pre", {}, pretty(collection.template)),
      h("p", { class: "actions" }, h("a", { href: `#/collections/${id}/tree`, id: "edit-tree" }, "Edit the trait tree"),
        h("a", { href: `#/collections/${id}/rarity`, id: "rarity-link" }, "Rarity"),
        h("a", { href: `#/collections/${id}/gallery`, id: "gallery-link" }, "All pieces"))),
    layersSection(collection),
    previewSection(id, Boolean(collection.layers)),
    startSection(id),
    h("section", { class: "card", "aria-labelledby": "cooks-heading" },
      h("h2", { id: "cooks-heading" }, "Cooks"),
      cooks.edges.length ? table("This collection's cooks, newest first", ["Cook", "Status", "Made", "Rejected", "Failed", "Cost", "Review"],
        cooks.edges.map(({ node }) => [
          h("a", { href: `#/cooks/${node.id}` }, `${node.id.slice(0, 11)}… (${node.count} pieces, seed ${node.seed})`),
          statusText(node.status), String(node.numbers.completed), String(node.numbers.rejected),
          String(node.numbers.failed), `$${node.numbers.costUsd}`, h("a", { href: `#/cooks/${node.id}/review` }, "Review")]))
        : h("p", {}, "No cooks yet.")),
    await exportsSection(id));
}

const PICTURES_MAX = 12; // previewLayers' bound

/** base64 PNG -> a blob: URL (the CSP allows blob: images, not data:). */
function pngUrl(base64) {
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return URL.createObjectURL(new Blob([bytes], { type: "image/png" }));
}

function previewSection(collectionId, pictures) {
  const count = h("input", { name: "previewCount", type: "number", min: 1, max: 100, value: pictures ? 6 : 5 });
  const seed = h("input", { name: "previewSeed", type: "number", min: 0, max: 2147483647, placeholder: "random" });
  const out = h("div", { id: "preview", "aria-live": "polite" });
  const button = h("button", { type: "submit" }, "Preview");
  const urls = [];
  onLeave(() => urls.splice(0).forEach((u) => URL.revokeObjectURL(u)));
  const form = h("form", {
    onsubmit: (event) => {
      event.preventDefault();
      act(button, async () => {
        const variables = { id: collectionId, count: Number(count.value), seed: seed.value === "" ? null : Number(seed.value) };
        const { previewPieces } = await gql(`query Preview($id: ID!, $count: Int!, $seed: Int) {
          previewPieces(collectionId: $id, count: $count, seed: $seed) { seed pieces { index traits { category name } params } } }`, variables);
        let images = new Map();
        if (pictures) {
          const { previewLayers } = await gql(`query PreviewLayers($id: ID!, $count: Int!, $seed: Int) {
            previewLayers(collectionId: $id, count: $count, seed: $seed, size: 128) { pieces { index image } } }`,
          { ...variables, count: Math.min(PICTURES_MAX, variables.count), seed: previewPieces.seed });
          urls.splice(0).forEach((u) => URL.revokeObjectURL(u));
          images = new Map(previewLayers.pieces.filter((p) => p.image).map((p) => { const u = pngUrl(p.image); urls.push(u); return [p.index, u]; }));
        }
        const headers = pictures ? ["Index", "Picture", "Traits", "Parameters"] : ["Index", "Traits", "Parameters"];
        replace(out, h("p", {}, "With seed ", h("strong", { id: "preview-seed" }, String(previewPieces.seed)), " the next cook would draw:"),
          table("Previewed pieces (nothing is stored)", headers, previewPieces.pieces.map((p) => {
            const traits = p.traits.map((t) => `${t.category}: ${t.name}`).join(", ");
            const cells = [String(p.index), traits, h("pre", {}, JSON.stringify(p.params))];
            if (pictures) cells.splice(1, 0, images.has(p.index) ? h("img", { src: images.get(p.index), class: "preview-picture", width: 128, height: 128, alt: `Piece ${p.index}: ${traits}` }) : `(pictures for the first ${PICTURES_MAX})`);
            return cells;
          })));
      });
    },
  }, h("div", { class: "row" }, field("Pieces", count), field("Seed", seed), h("div", {}, button)));
  return h("section", { class: "card", "aria-labelledby": "preview-heading" }, h("h2", { id: "preview-heading" }, "Preview"),
    h("p", { class: "hint" }, pictures
      ? `Draw what the next cook would make with a seed, and see the first ${PICTURES_MAX} composed from the layers, without generating or storing anything.`
      : "Draw what the next cook would make with a seed, without generating or storing anything."), form, out);
}

function startSection(collectionId) {
  const count = h("input", { name: "count", type: "number", min: 1, max: 100000, value: 12, required: true });
  const maxConcurrent = h("input", { name: "maxConcurrent", type: "number", min: 1, max: 32, value: 3 });
  const seed = h("input", { name: "seed", type: "number", min: 0, max: 2147483647, placeholder: "random" });
  const button = h("button", { type: "submit" }, "Start cook");
  const form = h("form", {
    onsubmit: (event) => {
      event.preventDefault();
      act(button, async () => {
        const { startCook } = await gql(`mutation Start($id: ID!, $count: Int!, $max: Int, $seed: Int) {
          startCook(collectionId: $id, count: $count, maxConcurrent: $max, seed: $seed) { id } }`,
        { id: collectionId, count: Number(count.value), max: maxConcurrent.value === "" ? null : Number(maxConcurrent.value), seed: seed.value === "" ? null : Number(seed.value) });
        navigate(`#/cooks/${startCook.id}`);
      });
    },
  }, h("div", { class: "row" }, field("Pieces to make", count), field("At most in flight", maxConcurrent), field("Seed", seed), h("div", {}, button)));
  return h("section", { class: "card", "aria-labelledby": "start-heading" }, h("h2", { id: "start-heading" }, "Start a cook"), form);
}
