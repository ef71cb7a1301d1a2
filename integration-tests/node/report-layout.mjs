// Loads a `sandbox report` page in headless Chromium at a given width and prints what the
// layout test asserts on, as JSON: whether the page scrolls sideways, which sections or
// tables are wider than their box, the seven-dimension rows, and the tallest table cell.
// Usage: node report-layout.mjs REPORT.html SCREENSHOT.png [WIDTH]
import { chromium } from 'playwright-core';

const [html, png, widthArg] = process.argv.slice(2);
const width = Number(widthArg || 1280);
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const browser = await chromium.launch({
  executablePath,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage({ viewport: { width, height: 900 } });
  await page.goto('file://' + html);
  const facts = await page.evaluate(() => {
    const doc = document.documentElement;
    const wide = [];
    for (const el of document.querySelectorAll('section, table')) {
      if (el.scrollWidth > el.clientWidth + 1) {
        const heads = el.tagName === 'TABLE' ? [...el.rows[0].cells].map(c => c.innerText.trim() + ':' + Math.round(c.getBoundingClientRect().width)) : [];
        wide.push({ id: el.id || el.closest('section')?.id || el.tagName, scroll: el.scrollWidth, client: el.clientWidth, columns: heads });
      }
    }
    let tallest = { height: 0, text: '' };
    for (const td of document.querySelectorAll('td')) {
      const h = td.getBoundingClientRect().height;
      if (h > tallest.height) tallest = { height: h, text: td.innerText.slice(0, 120) };
    }
    const dims = [...document.querySelectorAll('#dimensions tr')].slice(1).map(tr => ({
      name: tr.cells[0].innerText.trim(),
      status: tr.cells[1].innerText.trim(),
    }));
    return {
      viewport: window.innerWidth,
      page_scroll_width: doc.scrollWidth,
      page_client_width: doc.clientWidth,
      wide,
      tallest,
      dims,
      titles: [...document.querySelectorAll('section h2')].map(h => h.innerText),
    };
  });
  await page.screenshot({ path: png, fullPage: true });
  console.log(JSON.stringify(facts));
} finally {
  await browser.close();
}
