// Small DOM helpers: elements are built with text content only (never HTML strings).

/** An element with attributes (`on…` functions become listeners) and children (strings become text). */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function clear(element) {
  element.replaceChildren();
  return element;
}

/** A message in the corner for a few seconds (errors in red). */
export function toast(message, isError = false) {
  const box = document.getElementById("toast");
  const item = h("div", { class: isError ? "msg error" : "msg" }, message);
  box.append(item);
  setTimeout(() => item.remove(), isError ? 8000 : 4000);
}

export function age(iso) {
  if (!iso) return "";
  const seconds = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

export function bytes(count) {
  if (count < 1024) return `${count} B`;
  if (count < 1 << 20) return `${(count / 1024).toFixed(1)} KiB`;
  if (count < 1 << 30) return `${(count / (1 << 20)).toFixed(1)} MiB`;
  return `${(count / (1 << 30)).toFixed(2)} GiB`;
}

/** A small line chart of `values` (numbers) as an SVG, with a label for screen readers. */
export function sparkline(values, label, width = 220, height = 48) {
  const svgNS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNS, "svg");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const max = Math.max(1e-9, ...values);
  const step = values.length > 1 ? width / (values.length - 1) : width;
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`).join(" ");
  const line = document.createElementNS(svgNS, "polyline");
  line.setAttribute("points", points);
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", "#0b5fff");
  line.setAttribute("stroke-width", "2");
  svg.append(line);
  return svg;
}
