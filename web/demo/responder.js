// Response strategies of the chat demo and the local, template-based text
// each one writes. No language model and no network: the point of the demo
// is which strategy the router picks for which kind of message, and how the
// user's 👍/👎 change that pick.

/** The router's routes, one per response style. Costs are equal so that only quality decides. */
export const STRATEGIES = Object.freeze([
  { name: "concise", label: "Concise", cost: 1 },
  { name: "step_by_step", label: "Step by step", cost: 1 },
  { name: "empathetic", label: "Empathetic", cost: 1 },
  { name: "examples", label: "With examples", cost: 1 },
]);

export function strategyLabel(name) {
  return STRATEGIES.find((strategy) => strategy.name === name)?.label ?? name;
}

// Words that hint at a subject, used only to fill the "where to look" slot
// of a template. They never influence which strategy is chosen.
const SUBJECTS = [
  {
    words: ["account", "balance", "transfer", "bank", "deposit", "routing", "pin", "savings", "checking", "transaction"],
    place: "your bank's app or online banking",
    caution: "Never share a PIN or a full card number in a chat.",
    sample: ["moving 50 dollars from checking to savings", "checking last week's transactions"],
  },
  {
    words: ["card", "credit", "apr", "rewards", "limit", "interest", "payment", "bill", "pay", "due"],
    place: "the card issuer's app or the statement page",
    caution: "A payment made before the due date avoids the late fee.",
    sample: ["raising the limit before a big purchase", "setting up autopay for the minimum"],
  },
  {
    words: ["flight", "hotel", "passport", "visa", "trip", "luggage", "travel", "vacation", "reservation", "airport", "book"],
    place: "the airline's or booking site's trip page",
    caution: "Entry rules change; the embassy's site has the current ones.",
    sample: ["checking a bag on a morning flight", "moving a hotel booking by one night"],
  },
  {
    words: ["car", "tire", "tires", "oil", "gas", "mpg", "traffic", "commute", "uber", "ride", "insurance", "jump"],
    place: "the car's manual or a service centre",
    caution: "For anything about brakes or steering, a mechanic should look first.",
    sample: ["checking tire pressure before a long drive", "the time an oil change is due"],
  },
  {
    words: ["recipe", "cook", "calories", "ingredient", "dinner", "restaurant", "meal", "food", "bake", "eat", "nutrition"],
    place: "a trusted recipe site or the food's label",
    caution: "Check allergens on the label, not only in the recipe.",
    sample: ["a 20-minute pasta for two", "swapping butter for oil when baking"],
  },
  {
    words: ["alarm", "lights", "thermostat", "shopping", "list", "todo", "reminder", "calendar", "smart", "play", "music"],
    place: "your reminders or smart-home app",
    caution: "Shared lists sync only when every device is signed in.",
    sample: ["a 7 am alarm on weekdays", "adding milk to the shopping list"],
  },
  {
    words: ["meeting", "pto", "payday", "w2", "manager", "work", "schedule", "salary", "401k", "benefits", "vacation"],
    place: "your HR portal",
    caution: "Policies differ between employers; the handbook decides.",
    sample: ["requesting two days off in May", "finding last year's W-2"],
  },
];

const DEFAULT_SUBJECT = {
  place: "the service's settings or help page",
  caution: "If something looks wrong, support can check your case directly.",
  sample: ["doing it once with the defaults", "trying it again after a restart"],
};

const LEAD_INS = /^(?:hey|hi|hello|please|ok|okay|so|um|well|yo)\b[\s,!.]*/i;
const QUESTION_LEADS = [
  /^(?:can|could|would|will) you (?:please )?(?:tell me|help me(?: with)?|let me know|show me)?\s*/i,
  /^i (?:want|need|would like|'d like) (?:to know |you to )?/i,
  /^(?:tell|show) me\s*/i,
  /^(?:how (?:do|can|should|would) i|how to)\s*/i,
  /^(?:what(?:'s| is| are)|whats)\s*/i,
];
const MAX_TOPIC_WORDS = 12;

/** Reduce a message to the phrase it is about: no greeting, no question lead-in, no final punctuation. */
export function extractTopic(text) {
  let topic = String(text).trim().replace(/\s+/g, " ");
  topic = topic.replace(LEAD_INS, "");
  for (const lead of QUESTION_LEADS) {
    topic = topic.replace(lead, "");
  }
  topic = topic.replace(/[?!.\s]+$/u, "");
  const words = topic.split(" ").filter(Boolean);
  if (words.length === 0) {
    return String(text).trim() || "that";
  }
  const short = words.slice(0, MAX_TOPIC_WORDS).join(" ");
  return words.length > MAX_TOPIC_WORDS ? `${short}…` : short;
}

function findSubject(text) {
  const words = new Set(String(text).toLowerCase().match(/[a-z0-9']+/g) ?? []);
  return SUBJECTS.find((subject) => subject.words.some((word) => words.has(word))) ?? DEFAULT_SUBJECT;
}

/** FNV-1a hash of the text, to pick among template variants the same way every time. */
function variantIndex(text, count) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % count;
}

const WRITERS = {
  concise(topic, subject, pick) {
    const openers = [`Short answer on “${topic}”:`, `In one line, “${topic}”:`];
    return `${openers[pick(openers.length)]} start with ${subject.place}. ${subject.caution}`;
  },

  step_by_step(topic, subject) {
    return [
      `Here is how to go about “${topic}”:`,
      `1. Open ${subject.place}.`,
      "2. Find the section that matches what you asked.",
      "3. Make the change, or read the details, and confirm.",
      `4. Keep the confirmation. ${subject.caution}`,
    ].join("\n");
  },

  empathetic(topic, subject, pick) {
    const openers = [
      `I hear you: “${topic}” can take more time than it should.`,
      `Thanks for asking about “${topic}”, and no worries, it's a common question.`,
    ];
    return `${openers[pick(openers.length)]} When you're ready, ${subject.place} is a good place to start, and I'm happy to go through it with you.`;
  },

  examples(topic, subject) {
    return [
      `A few examples around “${topic}”:`,
      `• For instance: ${subject.sample[0]}.`,
      `• Or: ${subject.sample[1]}.`,
      `Both go through ${subject.place}.`,
    ].join("\n");
  },
};

/** Write the answer of strategy `name` to `text`. The same inputs always give the same answer. */
export function composeAnswer(name, text) {
  const writer = WRITERS[name];
  if (!writer) {
    throw new RangeError(`unknown strategy ${JSON.stringify(name)}; expected one of ${STRATEGIES.map((s) => s.name).join(", ")}`);
  }
  const topic = extractTopic(text);
  const pick = (count) => variantIndex(String(text), count);
  return writer(topic, findSubject(text), pick);
}
