// Inline SVG chart of the thumbs-up rate over the feedback given so far.

const SVG_NS = "http://www.w3.org/2000/svg";
const WIDTH = 320;
const HEIGHT = 140;
const MARGIN = { left: 34, right: 8, top: 10, bottom: 22 };

/** Feedbacks per point of the moving average. */
export const RATE_WINDOW = 20;

/** Moving thumbs-up rate: one value per feedback from the first full window, or fewer at the start. */
export function movingRate(ups, window = RATE_WINDOW) {
  const rates = [];
  let sum = 0;
  for (let i = 0; i < ups.length; i += 1) {
    sum += ups[i] ? 1 : 0;
    if (i >= window) {
      sum -= ups[i - window] ? 1 : 0;
    }
    rates.push(sum / Math.min(i + 1, window));
  }
  return rates;
}

function element(name, attributes = {}, text = null) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) {
    node.setAttribute(key, String(value));
  }
  if (text !== null) {
    node.textContent = text;
  }
  return node;
}

/** Draw the rate of `ups` (booleans, oldest first) into the <svg> `svg`, replacing its content. */
export function drawRateChart(svg, ups) {
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  svg.setAttribute("role", "img");

  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const y = (rate) => MARGIN.top + (1 - rate) * plotHeight;

  for (const rate of [0, 0.5, 1]) {
    svg.append(
      element("line", {
        x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(rate), y2: y(rate),
        class: rate === 0.5 ? "chart-mid" : "chart-grid",
      }),
      element("text", { x: MARGIN.left - 4, y: y(rate) + 4, class: "chart-label", "text-anchor": "end" }, `${rate * 100}%`),
    );
  }

  const rates = movingRate(ups);
  const count = rates.length;
  svg.append(
    element("text", { x: MARGIN.left, y: HEIGHT - 6, class: "chart-label" }, "feedback 1"),
    element("text", { x: WIDTH - MARGIN.right, y: HEIGHT - 6, class: "chart-label", "text-anchor": "end" }, count ? String(count) : ""),
  );
  if (count === 0) {
    svg.append(element("text", { x: MARGIN.left + plotWidth / 2, y: y(0.75) + 4, class: "chart-empty", "text-anchor": "middle" }, "no feedback yet"));
    svg.setAttribute("aria-label", "Thumbs-up rate: no feedback yet");
    return;
  }

  const x = (index) => MARGIN.left + (count === 1 ? plotWidth : (index / (count - 1)) * plotWidth);
  const points = rates.map((rate, index) => `${x(index).toFixed(1)},${y(rate).toFixed(1)}`).join(" ");
  svg.append(element("polyline", { points, class: "chart-line" }));
  svg.append(element("circle", { cx: x(count - 1), cy: y(rates[count - 1]), r: 3, class: "chart-dot" }));
  const last = Math.round(rates[count - 1] * 100);
  svg.setAttribute("aria-label", `Thumbs-up rate over the last ${Math.min(count, RATE_WINDOW)} feedbacks: ${last}%`);
}
