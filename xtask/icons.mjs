// Rasterises the app icons of www/manifest.webmanifest from www/favicon.svg with Debian's
// headless Chromium (playwright-core, as the tests use it). Run once after changing the SVG:
//
//   node xtask/icons.mjs
//
// Writes www/icon-192.png and www/icon-512.png (the icon as drawn, corners transparent) and
// www/icon-maskable-512.png (the glyph inside the maskable safe zone, the circle of 80 % of the
// size, on a full square of the icon's colour, for launchers that cut their own shape).

import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { chromium } from "playwright-core";
import { CHROMIUM_FLAGS } from "../tests/support/browser.mjs";

const WWW = resolve(import.meta.dirname, "../www");
const svg = readFileSync(resolve(WWW, "favicon.svg"), "utf8");

/** The maskable variant: the favicon's background as a full square, its glyph at 80 %. */
function maskable(source) {
  const background = /<rect[^>]*fill="([^"]+)"/.exec(source)?.[1];
  const glyph = /<path[^>]*\/>/.exec(source)?.[0];
  if (!background || !glyph) throw new Error("favicon.svg: expected one <rect fill> and one <path>");
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" fill="${background}"/>` +
    `<g transform="translate(16 16) scale(0.8) translate(-16 -16)">${glyph}</g></svg>`
  );
}

const browser = await chromium.launch({ executablePath: process.env.HUSH_CHROMIUM ?? "/usr/bin/chromium", args: CHROMIUM_FLAGS });
try {
  for (const [file, source, size] of [
    ["icon-192.png", svg, 192],
    ["icon-512.png", svg, 512],
    ["icon-maskable-512.png", maskable(svg), 512],
  ]) {
    const page = await browser.newPage({ viewport: { width: size, height: size }, deviceScaleFactor: 1 });
    const src = `data:image/svg+xml;base64,${Buffer.from(source).toString("base64")}`;
    await page.setContent(`<html><body style="margin:0;background:transparent"><img src="${src}" width="${size}" height="${size}" style="display:block"></body></html>`);
    await page.locator("img").evaluate((img) => img.decode());
    writeFileSync(resolve(WWW, file), await page.screenshot({ omitBackground: true, clip: { x: 0, y: 0, width: size, height: size } }));
    await page.close();
    console.log(`icons: wrote www/${file} (${size}×${size})`);
  }
} finally {
  await browser.close();
}
