// A tiny DOM builder: no innerHTML anywhere, so nothing the API returns is ever parsed as HTML.

let ids = 0;

/** A fresh element id, for label/for and aria-describedby pairs. */
export const uid = (prefix) => `${prefix}-${++ids}`;

/** h("button", {type: "button", onclick}, "Save") */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key in el && key !== "list" && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A labelled form control: field("Count", h("input", {...}), "hint"). */
export function field(label, control, hint) {
  control.id = control.id || uid("f");
  const hintEl = hint ? h("p", { class: "hint", id: uid("hint") }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", {}, h("label", { for: control.id }, label), control, hintEl);
}

export function table(caption, headers, rows) {
  return h("table", {},
    h("caption", { class: "hint" }, caption),
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))));
}
