// Layers in: a HashLips project (a ZIP, or its folder) read in the browser, shown as the
// categories, traits, weights and draw order importLayers will create, reordered and styled,
// then imported with the collection's version; and one trait's layer replaced (uploadLayer).
// Every refusal is the API's own message, which names the file.
import { unzipSync, zipSync } from "../vendor/fflate.esm.js";
import { gqlUpload } from "./api.js";
import { field, h, replace, table } from "./dom.js";
import { act, navigate, onLeave } from "./ui.js";

const BLENDS = ["NORMAL", "MULTIPLY", "SCREEN", "OVERLAY", "DARKEN", "LIGHTEN", "DIFFERENCE", "HARD_LIGHT", "SOFT_LIGHT"];
const IMAGE = /\.(png|webp)$/i;
const IMPORT = `mutation ImportLayers($c: ID!, $file: Upload!, $order: [LayerOrderInput!], $v: Int) {
  importLayers(collectionId: $c, file: $file, layersOrder: $order, expectedVersion: $v) { id version } }`;
const UPLOAD = `mutation UploadLayer($c: ID!, $category: String!, $trait: String!, $file: Upload!) {
  uploadLayer(collectionId: $c, category: $category, trait: $trait, file: $file) { version } }`;

/** `layers/<Category>/<Trait>#<weight>.png` -> {category, trait, weight}; null if not a layer. */
export function parseLayerPath(path) {
  const parts = path.split("/").filter(Boolean);
  const at = parts.lastIndexOf("layers");
  if (at < 0 || parts.length - at !== 3) return null;
  const [category, file] = parts.slice(at + 1);
  if (file.startsWith(".") || category.startsWith(".") || parts.includes("__MACOSX") || !IMAGE.test(file)) return null;
  const stem = file.replace(IMAGE, "");
  const hash = stem.lastIndexOf("#");
  const trait = hash < 0 ? stem : stem.slice(0, hash);
  const weight = hash < 0 ? 1 : Number(stem.slice(hash + 1));
  return { category, trait, weight, path: parts.slice(at).join("/") };
}

/** A plan from {path: bytes}: categories in name order (HashLips' default), traits by name. */
export function planOf(entries) {
  const byCategory = new Map();
  for (const [path, bytes] of Object.entries(entries)) {
    const layer = parseLayerPath(path);
    if (!layer) continue;
    if (!byCategory.has(layer.category)) byCategory.set(layer.category, []);
    byCategory.get(layer.category).push({ ...layer, bytes });
  }
  return [...byCategory.keys()].sort().map((name) => ({
    name, opacity: 1, blend: "NORMAL", include: true,
    traits: byCategory.get(name).sort((a, b) => a.trait.localeCompare(b.trait)),
  }));
}

const share = (trait, traits) => {
  const total = traits.reduce((sum, t) => sum + (Number.isFinite(t.weight) ? t.weight : 0), 0);
  return total > 0 && Number.isFinite(trait.weight) ? `${((trait.weight / total) * 100).toFixed(1)}%` : "—";
};

export function layersSection(collection) {
  const urls = [];
  onLeave(() => urls.splice(0).forEach((u) => URL.revokeObjectURL(u)));
  const zipInput = h("input", { type: "file", id: "layers-zip", accept: ".zip,application/zip" });
  const folderInput = h("input", { type: "file", id: "layers-folder", webkitdirectory: true, multiple: true });
  const drop = h("div", { class: "drop", id: "layers-drop" }, "…or drop a HashLips ZIP or its folder here.");
  const planBox = h("div", { id: "layers-plan", "aria-live": "polite" });
  let plan = null; // {categories, file (the ZIP to send)}

  const load = async (categories, file, source) => {
    plan = { categories, file };
    if (!categories.length) {
      replace(planBox, h("p", { class: "hint", id: "layers-empty" }, `${source} holds no layers/<Category>/<Trait>.png files.`));
      return;
    }
    render(source);
  };
  const fromZip = async (file) => {
    const entries = unzipSync(new Uint8Array(await file.arrayBuffer()), { filter: (f) => parseLayerPath(f.name) !== null });
    await load(planOf(entries), file, file.name);
  };
  const fromFiles = async (files) => {
    const entries = {};
    for (const f of files) {
      let path = f.webkitRelativePath || f.name;
      if (!path.split("/").includes("layers")) path = `layers/${path.split("/").slice(1).join("/")}`;
      if (parseLayerPath(path)) entries[path] = new Uint8Array(await f.arrayBuffer());
    }
    const zipped = zipSync(Object.fromEntries(Object.entries(entries).map(([p, b]) => [parseLayerPath(p).path, [b, { level: 0 }]])));
    await load(planOf(entries), new File([zipped], "layers.zip", { type: "application/zip" }), "The folder");
  };
  zipInput.addEventListener("change", () => act(null, () => zipInput.files[0] && fromZip(zipInput.files[0])));
  folderInput.addEventListener("change", () => act(null, () => folderInput.files.length && fromFiles([...folderInput.files])));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    act(null, async () => {
      const items = [...e.dataTransfer.items].map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
      if (items.length === 1 && items[0].isFile && /\.zip$/i.test(items[0].name)) return fromZip(e.dataTransfer.files[0]);
      const files = [];
      const walk = async (entry, prefix) => {
        if (entry.isFile) {
          const file = await new Promise((ok, fail) => entry.file(ok, fail));
          Object.defineProperty(file, "webkitRelativePath", { value: `${prefix}${entry.name}` });
          files.push(file);
        } else {
          const reader = entry.createReader();
          for (;;) {
            const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
            if (!batch.length) break;
            for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
          }
        }
      };
      for (const item of items) await walk(item, "");
      return fromFiles(files);
    });
  });

  const thumb = (bytes, alt) => {
    const url = URL.createObjectURL(new Blob([bytes]));
    urls.push(url);
    return h("img", { src: url, alt, class: "thumb", width: 40, height: 40 });
  };

  const render = (source) => {
    const cats = plan.categories;
    const move = (i, by) => { const [c] = cats.splice(i, 1); cats.splice(i + by, 0, c); render(source); document.getElementById(`move-${by < 0 ? "up" : "down"}-${i + by}`)?.focus(); };
    const rows = cats.map((c, i) => {
      const opacity = h("input", { type: "number", min: 0, max: 1, step: 0.05, value: c.opacity, name: `opacity-${i}`, "aria-label": `Opacity of ${c.name}`, oninput: (e) => { c.opacity = Number(e.target.value); } });
      const blend = h("select", { name: `blend-${i}`, "aria-label": `Blend of ${c.name}`, onchange: (e) => { c.blend = e.target.value; } },
        BLENDS.map((b) => h("option", { value: b, selected: b === c.blend }, b.toLowerCase().replace("_", " "))));
      const include = h("input", { type: "checkbox", checked: c.include, "aria-label": `Import ${c.name}`, onchange: (e) => { c.include = e.target.checked; } });
      return h("tr", { "data-category": c.name },
        h("td", {}, String(i + 1)),
        h("td", {}, h("strong", {}, c.name), " ", include),
        h("td", {}, h("ul", { class: "traits-plan" }, c.traits.map((t) => h("li", {}, thumb(t.bytes, ""), ` ${t.trait} `,
          h("span", { class: "hint" }, `weight ${t.weight}, ${share(t, c.traits)}`))))),
        h("td", {}, opacity), h("td", {}, blend),
        h("td", {}, h("button", { type: "button", class: "secondary", id: `move-up-${i}`, disabled: i === 0, "aria-label": `Move ${c.name} up`, onclick: () => move(i, -1) }, "↑"), " ",
          h("button", { type: "button", class: "secondary", id: `move-down-${i}`, disabled: i === cats.length - 1, "aria-label": `Move ${c.name} down`, onclick: () => move(i, 1) }, "↓")));
    });
    const submit = h("button", { type: "button", id: "import-layers" }, "Import layers");
    submit.addEventListener("click", () => act(submit, async () => {
      const order = cats.filter((c) => c.include).map((c) => ({ name: c.name, opacity: c.opacity, blend: c.blend }));
      await gqlUpload(IMPORT, { c: collection.id, order, v: collection.version }, { file: plan.file });
      navigate(`#/collections/${collection.id}`);
    }));
    const traits = cats.reduce((n, c) => n + c.traits.length, 0);
    replace(planBox,
      h("p", { id: "layers-summary" }, `${source}: ${cats.length} categories, ${traits} traits. Drawn top to bottom (the first is the back); the import replaces the tree's manual categories and keeps generated ones after them.`),
      h("table", { id: "layers-order" }, h("caption", { class: "hint" }, "What the import will create, in draw order"),
        h("thead", {}, h("tr", {}, ["#", "Category", "Traits (weight, expected share)", "Opacity", "Blend", "Order"].map((x) => h("th", { scope: "col" }, x)))),
        h("tbody", {}, rows)),
      h("div", { class: "actions" }, submit));
  };

  return h("section", { class: "card", "aria-labelledby": "layers-heading" },
    h("h2", { id: "layers-heading" }, "Layers"),
    h("p", { class: "hint" }, "A HashLips project: layers/<Category>/<Trait>#<weight>.png (no #weight: weight 1). Importing makes the trait tree's manual categories and their layer images, for the layers tool."),
    h("div", { class: "row" }, field("HashLips ZIP", zipInput), field("Or its folder", folderInput)),
    drop, planBox, currentLayers(collection));
}

/** The collection's layers today, each trait's replaceable with uploadLayer. */
function currentLayers(collection) {
  const set = collection.layers;
  const manual = collection.traitTree.filter((c) => c.traits);
  if (!set && !manual.length) return null;
  const has = new Map((set ? set.layers : []).map((x) => [`${x.category}/${x.trait}`, x]));
  const status = h("p", { id: "layer-status", "aria-live": "polite", class: "hint" });
  const rows = manual.flatMap((c) => c.traits.map((t) => {
    const layer = has.get(`${c.name}/${t.name}`);
    const input = h("input", { type: "file", accept: "image/png,image/webp", "aria-label": `Replace the layer of ${c.name} ${t.name}`, "data-layer": `${c.name}/${t.name}` });
    input.addEventListener("change", () => act(null, async () => {
      const [file] = input.files;
      if (!file) return;
      const { uploadLayer } = await gqlUpload(UPLOAD, { c: collection.id, category: c.name, trait: t.name }, { file });
      status.textContent = `Replaced ${c.name}/${t.name} (layer set version ${uploadLayer.version}).`;
      navigate(`#/collections/${collection.id}`);
    }));
    return [c.name, t.name, layer ? h("code", {}, layer.sha256.slice(0, 12)) : "no layer", input];
  }));
  const style = set ? set.styles.length ? set.styles.map((x) => `${x.category}: ${x.blend.toLowerCase()} at ${x.opacity}`).join(", ") : "" : "";
  return h("details", { id: "current-layers" },
    h("summary", {}, set ? `Layers now: ${set.layers.length} images, ${set.width}×${set.height}` : "No layer images yet"),
    style ? h("p", { class: "hint" }, `Styles: ${style}.`) : null,
    table("Each trait's layer (replace one with a PNG or WebP of the same size)", ["Category", "Trait", "Layer", "Replace"], rows),
    status);
}
