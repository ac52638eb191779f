// The trait tree editor: categories (manual traits with values and weights, or generated
// ranges), their order, and exclusion rules, edited in a form. Every change is checked by the
// API itself (updateCollection with dryRun: its own errors, nothing written) as the artist
// types, and saved with expectedVersion, so a change made elsewhere meanwhile is refused, not
// overwritten. The JSON file format stays: export the saved tree, import a file.
import { ApiError, gql } from "./api.js";
import { field, h, replace } from "./dom.js";
import { act, navigate, onLeave, showError } from "./ui.js";

const LOAD = `query Tree($id: ID!) { collection(id: $id) {
  id name version traitTreeFile
  traitTree { name ... on ManualCategory { traits { name value weight } }
    ... on GeneratedCategory { range { start end step zeroPad uniqueAcrossCook shuffleSeed } } }
  rules { uniqueCombinations exclusions { category trait excludedCategory excludes } } } }`;
const UPDATE = `mutation SaveTree($id: ID!, $input: UpdateCollectionInput!, $v: Int, $dry: Boolean!) {
  updateCollection(id: $id, input: $input, expectedVersion: $v, dryRun: $dry) { version traitTree { name } } }`;
const IMPORT = `mutation ImportTree($id: ID!, $file: JSON!, $v: Int) { importTraitTree(id: $id, file: $file, expectedVersion: $v) { version } }`;
const CHECK_MS = 400;

/** The editor's model from the API's tree. */
function modelOf(collection) {
  return {
    categories: collection.traitTree.map((c) => c.traits
      ? { kind: "manual", name: c.name, traits: c.traits.map((t) => ({ name: t.name, value: t.value, weight: t.weight })) }
      : { kind: "generated", name: c.name, range: { ...c.range } }),
    exclusions: collection.rules.exclusions.map((x) => ({ ...x, excludes: x.excludes.join(", ") })),
    uniqueCombinations: collection.rules.uniqueCombinations,
  };
}

/** The model as updateCollection's input: the API checks everything else. */
function inputOf(model) {
  return {
    traitTree: model.categories.map((c) => c.kind === "manual"
      ? { manual: { name: c.name, traits: c.traits.map((t) => ({ name: t.name, value: t.value === "" ? null : t.value, weight: Number(t.weight) })) } }
      : { generated: { name: c.name, range: {
        start: Number(c.range.start), end: Number(c.range.end), step: Number(c.range.step), zeroPad: Number(c.range.zeroPad),
        uniqueAcrossCook: c.range.uniqueAcrossCook, shuffleSeed: c.range.shuffleSeed === "" || c.range.shuffleSeed === null ? null : Number(c.range.shuffleSeed) } } }),
    rules: {
      uniqueCombinations: model.uniqueCombinations,
      exclusions: model.exclusions.map((x) => ({ category: x.category, trait: x.trait, excludedCategory: x.excludedCategory,
        excludes: x.excludes.split(",").map((v) => v.trim()).filter(Boolean) })),
    },
  };
}

export async function treeView(view, id) {
  let { collection } = await gql(LOAD, { id });
  let model = modelOf(collection);
  let version = collection.version;
  const form = h("div", { id: "tree-form" });
  const check = h("p", { id: "tree-check", class: "check", role: "status" });
  const versionLabel = h("span", { id: "tree-version" }, String(version));
  const save = h("button", { type: "button", id: "save-tree" }, "Save trait tree");
  let timer = null;
  let checks = 0;
  onLeave(() => clearTimeout(timer));

  const markInvalid = (paths) => {
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    // The API names the field that breaks a rule (e.g. input.traitTree[1].traits[0].name).
    for (const path of paths) for (const el of form.querySelectorAll("[data-path]")) if (path === el.dataset.path || path.endsWith(`.${el.dataset.path}`)) el.setAttribute("aria-invalid", "true");
  };
  const validate = async () => {
    const mine = ++checks;
    try {
      const { updateCollection } = await gql(UPDATE, { id, input: inputOf(model), v: version, dry: true });
      if (mine !== checks) return;
      check.className = "check ok";
      check.textContent = `The API accepts this tree: ${updateCollection.traitTree.length} categories.`;
      markInvalid([]);
    } catch (error) {
      if (mine !== checks) return;
      check.className = "check bad";
      check.textContent = `${error.message} (${error.code})`;
      markInvalid((error.extensions.problems || []).map((p) => p.path).concat(error.extensions.field ? [error.extensions.field] : []));
    }
  };
  const changed = () => { clearTimeout(timer); check.textContent = "Checking…"; check.className = "check"; timer = setTimeout(validate, CHECK_MS); };

  const input = (obj, key, label, path, props = {}) => {
    const el = h("input", { value: obj[key] ?? "", "data-path": path, ...props });
    if (props.type === "checkbox") el.checked = Boolean(obj[key]);
    el.addEventListener("input", () => { obj[key] = props.type === "checkbox" ? el.checked : el.value; changed(); });
    el.addEventListener("change", () => { obj[key] = props.type === "checkbox" ? el.checked : el.value; changed(); });
    return field(label, el);
  };
  const structural = (fn) => () => { fn(); render(); changed(); };

  const render = () => {
    const cats = model.categories.map((c, i) => {
      const path = `traitTree[${i}]`;
      const head = h("div", { class: "row" },
        input(c, "name", `Category ${i + 1} name`, `${path}.name`, { maxlength: 50 }),
        h("p", { class: "hint" }, c.kind === "manual" ? "Manual: weighted traits" : "Generated: a numeric range"),
        h("div", { class: "actions" },
          h("button", { type: "button", class: "secondary", disabled: i === 0, "aria-label": `Move category ${c.name || i + 1} up`, onclick: structural(() => { model.categories.splice(i - 1, 0, ...model.categories.splice(i, 1)); }) }, "↑"),
          h("button", { type: "button", class: "secondary", disabled: i === model.categories.length - 1, "aria-label": `Move category ${c.name || i + 1} down`, onclick: structural(() => { model.categories.splice(i + 1, 0, ...model.categories.splice(i, 1)); }) }, "↓"),
          h("button", { type: "button", class: "secondary", "aria-label": `Remove category ${c.name || i + 1}`, onclick: structural(() => { model.categories.splice(i, 1); }) }, "Remove")));
      let body;
      if (c.kind === "manual") {
        const total = c.traits.reduce((s, t) => s + (Number(t.weight) > 0 ? Number(t.weight) : 0), 0);
        body = h("div", {},
          h("table", { class: "traits-edit" }, h("caption", { class: "hint" }, `Traits of ${c.name || `category ${i + 1}`}`),
            h("thead", {}, h("tr", {}, ["Name", "Value (what [[Category]] becomes)", "Weight", "Share", ""].map((x) => h("th", { scope: "col" }, x)))),
            h("tbody", {}, c.traits.map((t, j) => {
              const tp = `${path}.traits[${j}]`;
              const label = `${c.name || `category ${i + 1}`} trait ${j + 1}`;
              const cell = (key, what, props) => {
                const el = h("input", { value: t[key] ?? "", "aria-label": `${label} ${what}`, "data-path": `${tp}.${key}`, ...props });
                el.addEventListener("input", () => { t[key] = el.value; changed(); });
                return el;
              };
              return h("tr", {},
                h("td", {}, cell("name", "name", { maxlength: 50 })),
                h("td", {}, cell("value", "value", { maxlength: 1000, placeholder: "the name" })),
                h("td", {}, cell("weight", "weight", { type: "number", min: 0, step: "any" })),
                h("td", {}, total > 0 && Number(t.weight) > 0 ? `${((Number(t.weight) / total) * 100).toFixed(1)}%` : "—"),
                h("td", {}, h("button", { type: "button", class: "secondary", "aria-label": `Remove ${label}`, onclick: structural(() => { c.traits.splice(j, 1); }) }, "Remove")));
            }))),
          h("button", { type: "button", class: "secondary", "aria-label": `Add a trait to ${c.name || `category ${i + 1}`}`, onclick: structural(() => { c.traits.push({ name: "", value: "", weight: 1 }); }) }, "Add trait"));
      } else {
        const rp = `${path}.range`;
        body = h("div", { class: "row" },
          input(c.range, "start", "Start", `${rp}.start`, { type: "number" }),
          input(c.range, "end", "End", `${rp}.end`, { type: "number" }),
          input(c.range, "step", "Step", `${rp}.step`, { type: "number", min: 1 }),
          input(c.range, "zeroPad", "Zero pad", `${rp}.zeroPad`, { type: "number", min: 0, max: 32 }),
          input(c.range, "shuffleSeed", "Shuffle seed", `${rp}.shuffleSeed`, { type: "number", min: 0, placeholder: "none" }),
          input(c.range, "uniqueAcrossCook", "Unique across the collection", `${rp}.uniqueAcrossCook`, { type: "checkbox" }));
      }
      return h("fieldset", { class: "category", "data-category": i }, h("legend", {}, `${i + 1}. ${c.name || "(unnamed)"}`), head, body);
    });
    const rules = model.exclusions.map((x, k) => {
      const rp = `exclusions[${k}]`;
      return h("div", { class: "row exclusion" },
        input(x, "category", `Rule ${k + 1}: category`, `${rp}.category`),
        input(x, "trait", "its trait", `${rp}.trait`),
        input(x, "excludedCategory", "forbids in category", `${rp}.excludedCategory`),
        input(x, "excludes", "these traits (comma-separated)", `${rp}.excludes`),
        h("div", {}, h("button", { type: "button", class: "secondary", "aria-label": `Remove rule ${k + 1}`, onclick: structural(() => { model.exclusions.splice(k, 1); }) }, "Remove")));
    });
    replace(form, cats,
      h("div", { class: "actions" },
        h("button", { type: "button", class: "secondary", id: "add-manual", onclick: structural(() => { model.categories.push({ kind: "manual", name: "", traits: [{ name: "", value: "", weight: 1 }] }); }) }, "Add manual category"),
        h("button", { type: "button", class: "secondary", id: "add-generated", onclick: structural(() => { model.categories.push({ kind: "generated", name: "", range: { start: 1, end: 100, step: 1, zeroPad: 0, uniqueAcrossCook: false, shuffleSeed: "" } }); }) }, "Add generated range")),
      h("h2", { id: "rules-heading" }, "Exclusion rules"),
      h("p", { class: "hint" }, "A trait that forbids others in another category (manual categories only)."),
      rules,
      h("div", { class: "actions" },
        h("button", { type: "button", class: "secondary", id: "add-rule", onclick: structural(() => { model.exclusions.push({ category: "", trait: "", excludedCategory: "", excludes: "" }); }) }, "Add rule")),
      input(model, "uniqueCombinations", "No two pieces share all their traits", "uniqueCombinations", { type: "checkbox" }));
  };

  save.addEventListener("click", () => act(save, async () => {
    clearTimeout(timer);
    const { updateCollection } = await gql(UPDATE, { id, input: inputOf(model), v: version, dry: false });
    version = updateCollection.version;
    versionLabel.textContent = String(version);
    check.className = "check ok";
    check.textContent = `Saved: version ${version}.`;
  }));

  const exportJson = h("button", { type: "button", class: "secondary", id: "export-tree" }, "Export JSON");
  exportJson.addEventListener("click", () => act(exportJson, async () => {
    ({ collection } = await gql(LOAD, { id }));
    const url = URL.createObjectURL(new Blob([JSON.stringify(collection.traitTreeFile, null, 2)], { type: "application/json" }));
    const a = h("a", { href: url, download: `${collection.name}-trait-tree.json` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }));
  const importFile = h("input", { type: "file", accept: "application/json,.json", id: "import-tree" });
  importFile.addEventListener("change", () => act(null, async () => {
    const [file] = importFile.files;
    if (!file) return;
    let parsed;
    try { parsed = JSON.parse(await file.text()); } catch (error) { throw new ApiError(`${file.name} is not valid JSON: ${error.message}`, "BAD_USER_INPUT"); }
    await gql(IMPORT, { id, file: parsed, v: version });
    navigate(`#/collections/${id}/tree`);
  }));

  render();
  replace(view,
    h("p", {}, h("a", { href: `#/collections/${id}` }, `← ${collection.name}`)),
    h("h1", {}, "Trait tree"),
    h("section", { class: "card", "aria-labelledby": "tree-heading" },
      h("h2", { id: "tree-heading" }, "Categories, in draw order"),
      h("p", { class: "hint" }, "Checked by the API as you type (nothing is written until you save). Saving sends the version you loaded (", versionLabel, "): a change made elsewhere meanwhile is refused, never overwritten."),
      form, check,
      h("div", { class: "actions" }, save)),
    h("section", { class: "card", "aria-labelledby": "json-heading" },
      h("h2", { id: "json-heading" }, "JSON"),
      h("p", { class: "hint" }, 'The old system\'s file format {"categories": [...]}: export the saved tree, or import a file (replacing the tree, at the version loaded).'),
      h("div", { class: "row" }, h("div", {}, exportJson), field("Import a .json file", importFile))));
  validate().catch(showError);
}
