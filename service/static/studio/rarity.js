// Rarity: per category, each trait's drawn share against its expected share (its weight over
// the category's), and its approval rate, from collectionAnalytics; a chart per category with
// the same numbers in a table, each trait linking to the gallery filtered to it.
import { gql } from "./api.js";
import { h, replace } from "./dom.js";
import { barChart } from "./charts.js";

const ANALYTICS = `query Rarity($id: ID!) {
  collection(id: $id) { id name }
  collectionAnalytics(collectionId: $id) { pieces accepted rejected approvalRate
    traits { category name drawn share expectedShare accepted rejected approvalRate } } }`;

const pct = (x) => (x === null || x === undefined ? "—" : `${(x * 100).toFixed(1)}%`);

export async function rarityView(view, id) {
  const { collection, collectionAnalytics: a } = await gql(ANALYTICS, { id });
  const byCategory = new Map();
  for (const t of a.traits) {
    if (!byCategory.has(t.category)) byCategory.set(t.category, []);
    byCategory.get(t.category).push(t);
  }
  const sections = [...byCategory].map(([category, traits], i) => {
    const max = Math.max(0.01, ...traits.flatMap((t) => [t.share ?? 0, t.expectedShare ?? 0]));
    const chart = barChart({
      title: `${category}: drawn and expected share of each trait`,
      rows: traits.map((t) => ({ label: t.name, values: [t.share, t.expectedShare] })),
      series: [{ name: "drawn share", cls: "drawn" }, { name: "expected share", cls: "expected" }],
      max: Math.min(1, max * 1.1),
    });
    const approval = barChart({
      title: `${category}: approval rate of each trait (accepted over reviewed)`,
      rows: traits.map((t) => ({ label: t.name, values: [t.approvalRate] })),
      series: [{ name: "approval rate", cls: "approval" }],
    });
    const rows = traits.map((t) => h("tr", { "data-trait": `${t.category}/${t.name}` },
      h("th", { scope: "row" }, h("a", { href: `#/collections/${id}/gallery?${new URLSearchParams({ [t.category]: t.name })}` }, t.name)),
      h("td", { class: "drawn" }, String(t.drawn)),
      h("td", { class: "share" }, pct(t.share)),
      h("td", { class: "expected" }, pct(t.expectedShare)),
      h("td", { class: "approval" }, `${pct(t.approvalRate)} (${t.accepted} accepted, ${t.rejected} rejected)`)));
    return h("section", { class: "card rarity", "aria-labelledby": `rarity-${i}`, "data-category": category },
      h("h2", { id: `rarity-${i}` }, category),
      h("div", { class: "chart-box charts" }, chart, approval),
      h("table", {}, h("caption", { class: "hint" }, `${category}: each trait (its link opens the pieces that drew it)`),
        h("thead", {}, h("tr", {}, ["Trait", "Drawn", "Drawn share", "Expected share", "Approval"].map((x) => h("th", { scope: "col" }, x)))),
        h("tbody", {}, rows)));
  });
  replace(view,
    h("p", {}, h("a", { href: `#/collections/${id}` }, `← ${collection.name}`)),
    h("h1", {}, "Rarity"),
    h("section", { class: "card", "aria-labelledby": "rarity-summary" },
      h("h2", { id: "rarity-summary" }, "Summary"),
      h("p", { id: "rarity-totals" }, `${a.pieces} pieces; ${a.accepted} accepted, ${a.rejected} rejected; approval ${pct(a.approvalRate)}.`),
      h("p", { class: "hint" }, "Drawn share: pieces of any status that drew the trait, over all pieces. Expected: its weight over its category's, in today's tree (exclusion rules can move the real share away from it).")),
    sections.length ? sections : h("p", {}, "No manual categories have been drawn yet."));
}
