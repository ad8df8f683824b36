// The account's LLM proxy spend by UTC day and model (GET /llm/v1/usage/daily), drawn as
// stacked bars in inline SVG: one bar per day, one segment per model, a legend, a title and
// a description for screen readers, and the same figures as a table.
import { api } from "./api.js";
import { h, clear, toast } from "./ui.js";

const svgNS = "http://www.w3.org/2000/svg";
const palette = ["#0b5fff", "#e8590c", "#2b8a3e", "#ae3ec9", "#c92a2a", "#1098ad", "#f08c00", "#5c7cfa", "#495057", "#d6336c"];

function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(svgNS, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  for (const child of children) element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return element;
}

/** Cents as dollars, with as many decimals as a small amount needs. */
export function dollars(cents) {
  const value = cents / 100;
  if (value === 0) return "$0";
  if (value >= 1) return `$${value.toFixed(2)}`;
  return `$${value.toPrecision(2)}`;
}

/** Every UTC day from `from` to `to` (YYYY-MM-DD), both included. */
function daysBetween(from, to) {
  const days = [];
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= Date.parse(`${to}T00:00:00Z`); t += 86400000) {
    days.push(new Date(t).toISOString().slice(0, 10));
  }
  return days;
}

/** The chart of one answer of GET /llm/v1/usage/daily. */
export function spendChart(usage) {
  const days = daysBetween(usage.from, usage.to);
  const colour = new Map(usage.models.map((model, i) => [model, palette[i % palette.length]]));
  const perDay = new Map(days.map((day) => [day, []]));
  for (const item of usage.items) if (perDay.has(item.date)) perDay.get(item.date).push(item);
  const totals = days.map((day) => perDay.get(day).reduce((sum, item) => sum + item.costCents, 0));
  const max = Math.max(...totals, 0) || 1;
  const width = 720, height = 220, left = 64, right = 8, top = 10, bottom = 28;
  const plot = { w: width - left - right, h: height - top - bottom };
  const slot = plot.w / days.length;
  const bar = Math.max(2, Math.min(28, slot * 0.7));
  const titleID = `spend-chart-title-${usage.days}`;
  const descID = `spend-chart-desc-${usage.days}`;
  const busiest = days[totals.indexOf(Math.max(...totals))];
  const chart = svg("svg", {
    id: "spend-chart", viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img",
    "aria-labelledby": titleID, "aria-describedby": descID, preserveAspectRatio: "xMinYMin meet",
  },
  svg("title", { id: titleID }, `LLM proxy spend per day by model, ${usage.from} to ${usage.to} (UTC)`),
  svg("desc", { id: descID }, usage.items.length
    ? `${dollars(usage.totalCents)} in ${usage.days} days over ${usage.models.length} model(s); the most on ${busiest} (${dollars(Math.max(...totals))}).`
    : `No LLM proxy requests in the last ${usage.days} days.`));
  // Grid lines with their amounts.
  for (const fraction of [0, 0.5, 1]) {
    const y = top + plot.h - fraction * plot.h;
    chart.append(
      svg("line", { x1: left, x2: width - right, y1: y, y2: y, stroke: "#d0d7de", "stroke-width": 1 }),
      svg("text", { x: left - 6, y: y + 4, "text-anchor": "end", "font-size": 11, fill: "#59636e" }, dollars(max * fraction)));
  }
  const labelEvery = Math.ceil(days.length / 10);
  days.forEach((day, i) => {
    const x = left + i * slot + (slot - bar) / 2;
    let y = top + plot.h;
    for (const item of perDay.get(day)) {
      const size = (item.costCents / max) * plot.h;
      y -= size;
      chart.append(svg("rect", {
        class: "bar", x: x.toFixed(1), y: y.toFixed(1), width: bar.toFixed(1), height: Math.max(size, 1).toFixed(1),
        fill: colour.get(item.model) || palette[0], "data-date": day, "data-model": item.model,
      }, svg("title", {}, `${day} · ${item.model}: ${dollars(item.costCents)}, ${item.requests} request(s), ${item.promptTokens}+${item.completionTokens} tokens`)));
    }
    if (i % labelEvery === 0 || i === days.length - 1) {
      chart.append(svg("text", { x: (left + i * slot + slot / 2).toFixed(1), y: height - 10, "text-anchor": "middle", "font-size": 11, fill: "#59636e" }, day.slice(5)));
    }
  });
  const legend = h("ul", { class: "legend", "aria-label": "Models" }, ...usage.models.map((model) =>
    h("li", {}, h("span", { class: "swatch", style: `background:${colour.get(model)}`, "aria-hidden": "true" }), model)));
  const rows = usage.items.slice().reverse().map((item) => h("tr", {},
    h("td", {}, item.date), h("td", { class: "mono" }, item.model), h("td", {}, String(item.requests)),
    h("td", {}, `${item.promptTokens} / ${item.completionTokens}`), h("td", {}, dollars(item.costCents))));
  const table = h("details", {}, h("summary", {}, "The figures as a table"),
    h("table", {}, h("thead", {}, h("tr", {}, ...["Day (UTC)", "Model", "Requests", "Tokens in / out", "Cost"].map((t) => h("th", {}, t)))),
      h("tbody", {}, ...rows)));
  return h("figure", { class: "spend-chart" }, chart, h("figcaption", {}, legend), usage.items.length ? table : h("p", { class: "muted" }, "Nothing spent in this period."));
}

/** The account page's section: a period picker and the chart, redrawn on change. */
export function spendHistorySection() {
  const period = h("select", { id: "spend-days" },
    ...[7, 30, 90].map((days) => h("option", { value: String(days), selected: days === 30 }, `${days} days`)));
  const box = h("div", { id: "spend-history", "aria-live": "polite" }, h("p", { class: "muted" }, "Loading…"));
  async function show() {
    try {
      const usage = await api("GET", `/llm/v1/usage/daily?days=${encodeURIComponent(period.value)}`);
      clear(box).append(spendChart(usage));
    } catch (error) {
      clear(box).append(h("p", { class: "muted" }, error.message));
      toast(error.message, true);
    }
  }
  period.addEventListener("change", show);
  show();
  return h("div", {}, h("div", { class: "row" }, h("h3", {}, "By day and model"), h("label", { for: "spend-days" }, "Period", period)), box);
}
