// DOM rendering of the chat demo. Every piece of user or engine text is
// inserted with textContent, never parsed as HTML.

import { strategyLabel, STRATEGIES } from "./responder.js";

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined && text !== null) {
    node.textContent = String(text);
  }
  return node;
}

function percent(value) {
  return `${Math.round(value * 100)}%`;
}

function fixed(value, digits = 2) {
  return Number.isFinite(value) ? value.toFixed(digits) : "–";
}

/** Render a user's message as a list item. */
export function renderUserMessage(message) {
  const item = el("li", "message message-user");
  item.dataset.id = message.id;
  item.append(el("p", "message-text", message.text));
  return item;
}

/**
 * Render a bot answer with its strategy, the 👍/👎 buttons and the "why this
 * answer" view. `onFeedback(id, up)` is called on a click; `canVote` is false
 * for answers restored from storage, whose embedding is no longer known.
 */
export function renderBotMessage(message, { onFeedback, canVote }) {
  const item = el("li", "message message-bot");
  item.dataset.id = message.id;
  item.dataset.strategy = message.strategy;

  const meta = el("div", "message-meta");
  meta.append(el("span", "strategy-chip", strategyLabel(message.strategy)));
  if (message.decision?.explored) {
    const chip = el("span", "explored-chip", "exploring");
    chip.title = "The router tried a strategy other than its current best, to learn about it.";
    meta.append(chip);
  }
  item.append(meta, el("p", "message-text", message.text));

  const feedback = el("div", "feedback");
  const up = voteButton("vote vote-up", "Good answer (thumbs up)", false);
  const down = voteButton("vote vote-down", "Bad answer (thumbs down)", true);
  const status = el("span", "feedback-status");
  feedback.append(up, down, status);
  up.addEventListener("click", () => onFeedback(message.id, true));
  down.addEventListener("click", () => onFeedback(message.id, false));
  item.append(feedback);

  if (message.decision) {
    item.append(renderWhy(message));
  }
  updateFeedback(item, message, canVote);
  return item;
}

const SVG_NS = "http://www.w3.org/2000/svg";
// A thumb drawn as one outline, so the buttons do not depend on an emoji font.
const THUMB_PATH = "M7 10.5v10H3.5v-10zM7 10.5l4.2-7.3c1.5 0 2.6 1.2 2.4 2.7L13.2 9h5.6a2 2 0 0 1 2 2.4l-1.5 7.4a2 2 0 0 1-2 1.7H7";

function voteButton(className, label, flipped) {
  const button = el("button", className);
  button.type = "button";
  button.setAttribute("aria-label", label);
  button.title = label;
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("d", THUMB_PATH);
  if (flipped) {
    path.setAttribute("transform", "rotate(180 12 12)");
  }
  svg.append(path);
  button.append(svg);
  return button;
}

/** Reflect the feedback state of `message` in its list item. */
export function updateFeedback(item, message, canVote) {
  const voted = message.feedback === true || message.feedback === false;
  for (const button of item.querySelectorAll(".vote")) {
    const isUp = button.classList.contains("vote-up");
    button.disabled = voted || !canVote;
    button.classList.toggle("chosen", voted && message.feedback === isUp);
    button.setAttribute("aria-pressed", String(voted && message.feedback === isUp));
  }
  const status = item.querySelector(".feedback-status");
  if (voted) {
    status.textContent = message.feedback ? "Thanks! The router learned from this." : "Noted: the router will try another style for messages like this.";
  } else if (!canVote) {
    status.textContent = "feedback closed (restored answer)";
  } else {
    status.textContent = "";
  }
}

function renderWhy(message) {
  const { decision } = message;
  const details = el("details", "why");
  details.append(el("summary", null, "Why this answer?"));

  const chosen = strategyLabel(decision.model);
  const reason = decision.explored
    ? `explored: it was not the best score, and Thompson sampling picks it with probability ${percent(decision.probability)}`
    : `best score; Thompson sampling picks it with probability ${percent(decision.probability)}`;
  details.append(el("p", "why-summary", `${chosen} (${reason}).`));

  const table = el("table", "why-scores");
  const head = el("tr");
  for (const title of ["Strategy", "Estimated quality", "±", "Score"]) {
    head.append(el("th", null, title));
  }
  table.append(head);
  STRATEGIES.forEach((strategy, index) => {
    const row = el("tr", strategy.name === decision.model ? "chosen" : null);
    row.append(
      el("td", null, strategy.label),
      el("td", null, fixed(decision.estimates?.[index])),
      el("td", null, fixed(decision.uncertainty?.[index])),
      el("td", null, fixed(decision.scores?.[index])),
    );
    table.append(row);
  });
  details.append(table);

  if (!decision.patterns?.length) {
    details.append(el("p", "why-note", "No learned patterns yet: the estimates come from a linear fit of all feedback so far."));
    return details;
  }
  details.append(el("p", "why-note", "Nearest learned patterns (their feedback per strategy):"));
  const list = el("ul", "why-patterns");
  for (const pattern of decision.patterns) {
    const stats = Object.entries(pattern.route_stats ?? {})
      .map(([route, stat]) => `${strategyLabel(route)} ${stat.count}× ${percent(stat.mean_quality)}`)
      .join(" · ");
    const line = `#${pattern.id}: similarity ${fixed(pattern.similarity)}, ${pattern.cluster_size} good answers, ` +
      `${stats || "no feedback yet"}`;
    list.append(el("li", null, line));
  }
  details.append(list);
  return details;
}

/** Render a system line of the chat (imports, resets) as a list item. */
export function renderSystemMessage(message) {
  const item = el("li", "message message-system");
  item.dataset.id = message.id;
  item.append(el("p", "message-text", message.text));
  return item;
}

/** Fill the <dl> `list` with `[label, value]` pairs. */
export function renderStats(list, pairs) {
  list.replaceChildren();
  for (const [label, value, key] of pairs) {
    const term = el("dt", null, label);
    const detail = el("dd", null, value);
    if (key) {
      detail.dataset.stat = key;
    }
    list.append(term, detail);
  }
}

/** Fill the strategy table body with each strategy's feedback count and mean quality. */
export function renderStrategyTable(body, models) {
  body.replaceChildren();
  for (const strategy of STRATEGIES) {
    const stats = models?.[strategy.name] ?? { count: 0, mean_quality: 0 };
    const row = el("tr");
    row.append(
      el("td", null, strategy.label),
      el("td", null, String(stats.count)),
      el("td", null, stats.count ? percent(stats.mean_quality) : "–"),
    );
    body.append(row);
  }
}

/** Add a notice; `kind` is "info", "warning" or "error". Resolves nothing; returns the element. */
export function showNotice(container, kind, text) {
  const notice = el("div", `notice notice-${kind}`);
  notice.setAttribute("role", kind === "error" ? "alert" : "status");
  notice.append(el("span", null, text));
  const close = el("button", "notice-close", "×");
  close.type = "button";
  close.setAttribute("aria-label", "Dismiss");
  close.addEventListener("click", () => notice.remove());
  notice.append(close);
  container.append(notice);
  return notice;
}
