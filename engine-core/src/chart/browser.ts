// A real browser for the results page: Debian's chromium driven by
// playwright-core (which never downloads a browser of its own). Used by
// `pnpm chart` for chart.png and by the browser test.
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

import { type Browser, type Page, chromium } from 'playwright-core';

/** Where chromium is: AIOS_CHROMIUM, else Debian's /usr/bin/chromium; undefined when absent. */
export function findChromium(): string | undefined {
  const p = process.env.AIOS_CHROMIUM ?? '/usr/bin/chromium';
  return existsSync(p) ? p : undefined;
}

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export async function launchChromium(executablePath: string): Promise<Browser> {
  return chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS, timeout: 60_000 });
}

export interface LoadedPage {
  page: Page;
  /** Uncaught exceptions and console errors the page produced. */
  errors: string[];
}

/**
 * Opens an HTML file from file:// with every network request refused (the page
 * must not need one) and waits until its charts are drawn (window.__aiosReady).
 */
export async function openResultsPage(browser: Browser, htmlFile: string, viewport = { width: 1200, height: 900 }): Promise<LoadedPage> {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console error: ${m.text()}`);
  });
  await page.route(/^(?!file:)/, (route) => {
    errors.push(`network request refused: ${route.request().url()}`);
    return route.abort();
  });
  await page.goto(pathToFileURL(htmlFile).href);
  try {
    await page.waitForFunction(() => (globalThis as unknown as { __aiosReady?: boolean }).__aiosReady === true, undefined, { timeout: 30_000 });
  } catch (e) {
    throw new Error(`${htmlFile}: the charts never finished drawing (${errors.join('; ') || (e as Error).message})`);
  }
  return { page, errors };
}

/** Renders the page's charts (the #charts block) to a PNG. */
export async function renderPng(htmlFile: string, pngFile: string, executablePath: string): Promise<void> {
  const browser = await launchChromium(executablePath);
  try {
    const { page, errors } = await openResultsPage(browser, htmlFile);
    if (errors.length) throw new Error(`${htmlFile}: ${errors.join('; ')}`);
    await page.locator('#charts').screenshot({ path: pngFile });
  } finally {
    await browser.close();
  }
}
