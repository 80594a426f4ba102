// Where the pages load Pyodide and the embedding models from. The site
// build writes config.js at the site root. A copy of web/ served without a
// build has no config.js, and then the folders beside the pages are used.

const SITE_ROOT = new URL("../", import.meta.url);

/** Resolve to `{pyodideIndexURL, modelsURL}`; modelsURL is null when the site has no models/ folder. */
export async function readSiteConfig() {
  try {
    const config = await import(new URL("config.js", SITE_ROOT).href);
    return { pyodideIndexURL: config.PYODIDE_INDEX_URL, modelsURL: config.MODELS_URL ?? null };
  } catch {
    return { pyodideIndexURL: new URL("pyodide/", SITE_ROOT).href, modelsURL: null };
  }
}
