// Two small SVG charts (grouped horizontal bars, step lines over time), drawn with DOM calls
// only (no innerHTML, no inline style: the CSP allows neither). Each chart is an image with a
// text name; the numbers it draws are also in a table next to it, and each mark carries its
// value in data- attributes (the tests read them).

const NS = "http://www.w3.org/2000/svg";

export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const pct = (x) => `${(x * 100).toFixed(1)}%`;

/**
 * Horizontal bars, one group per row: rows = [{label, values: [number|null, ...]}], series =
 * [{name, cls}] (values are shares, 0 to 1). Returns an <svg role="img">.
 */
export function barChart({ title, rows, series, max = 1 }) {
  const labelW = 140, barH = 12, gap = 3, groupGap = 10, width = 560, plotW = width - labelW - 60;
  const groupH = series.length * (barH + gap) + groupGap;
  const height = rows.length * groupH + 28;
  const top = max > 0 ? max : 1;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": title, class: "chart bars" },
    s("title", {}, title));
  rows.forEach((row, r) => {
    const y0 = r * groupH;
    svg.append(s("text", { x: labelW - 6, y: y0 + groupH / 2, "text-anchor": "end", "dominant-baseline": "middle", class: "label" }, row.label));
    series.forEach((serie, i) => {
      const value = row.values[i];
      const y = y0 + i * (barH + gap);
      const w = value === null ? 0 : Math.max(1, (value / top) * plotW);
      svg.append(s("rect", { x: labelW, y, width: w, height: barH, class: `bar ${serie.cls}`, "data-series": serie.name, "data-label": row.label, "data-value": value ?? "" }));
      svg.append(s("text", { x: labelW + w + 4, y: y + barH - 2, class: "value" }, value === null ? "—" : pct(value)));
    });
  });
  const ly = rows.length * groupH + 10;
  series.forEach((serie, i) => {
    const x = labelW + i * 150;
    svg.append(s("rect", { x, y: ly, width: 12, height: 12, class: `bar ${serie.cls}` }));
    svg.append(s("text", { x: x + 16, y: ly + 10, class: "legend" }, serie.name));
  });
  return svg;
}

/**
 * Step lines over time: points = [{t (ms), values: {key: n}}], series = [{key, name, cls}].
 * Returns an <svg role="img">.
 */
export function lineChart({ title, points, series, width = 640, height = 220 }) {
  const left = 40, right = 110, topPad = 10, bottom = 26;
  const plotW = width - left - right, plotH = height - topPad - bottom;
  const t0 = points.length ? points[0].t : 0;
  const span = Math.max(1, (points.length ? points[points.length - 1].t : 0) - t0);
  const maxY = Math.max(1, ...points.flatMap((p) => series.map((x) => p.values[x.key] || 0)));
  const X = (t) => left + ((t - t0) / span) * plotW;
  const Y = (v) => topPad + plotH - (v / maxY) * plotH;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": title, class: "chart lines" },
    s("title", {}, title),
    s("line", { x1: left, y1: topPad + plotH, x2: left + plotW, y2: topPad + plotH, class: "axis" }),
    s("line", { x1: left, y1: topPad, x2: left, y2: topPad + plotH, class: "axis" }),
    s("text", { x: left - 4, y: topPad + 4, "text-anchor": "end", class: "tick" }, String(maxY)),
    s("text", { x: left - 4, y: topPad + plotH, "text-anchor": "end", class: "tick" }, "0"),
    s("text", { x: left + plotW, y: height - 6, "text-anchor": "end", class: "tick" }, `${(span / 1000).toFixed(1)} s`),
    s("text", { x: left, y: height - 6, class: "tick" }, "0 s"));
  series.forEach((serie, i) => {
    let d = "";
    points.forEach((p, j) => {
      const x = X(p.t).toFixed(1), y = Y(p.values[serie.key] || 0).toFixed(1);
      d += j === 0 ? `M${x},${y}` : `H${x}V${y}`;
    });
    const last = points.length ? points[points.length - 1].values[serie.key] || 0 : 0;
    svg.append(s("path", { d: d || `M${left},${Y(0)}`, class: `line ${serie.cls}`, "data-series": serie.key, "data-last": last }));
    svg.append(s("text", { x: left + plotW + 8, y: topPad + 12 + i * 16, class: `legend ${serie.cls}` }, `${serie.name}: ${last}`));
  });
  return svg;
}
