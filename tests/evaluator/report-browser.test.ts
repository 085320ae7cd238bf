import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { renderReport } from '../../apps/evaluator/src/report/render';
import { HeadlessChromium, ensureChromium } from './support/chromium';
import { reportFixture } from './support/report-fixture';

describe('report in headless Chromium', () => {
  let browser: HeadlessChromium;
  const problems: string[] = [];
  let file: string;
  let expectedPoints: number;

  before(async () => {
    const input = await reportFixture();
    expectedPoints = input.results.history.length + 1;
    assert.equal(input.results.regression.regressed, true, 'the fixture is built to regress');
    file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'report-')), 'report.html');
    fs.writeFileSync(file, renderReport(input));
    browser = await HeadlessChromium.launch(ensureChromium(), 1200, 900);
    browser.on('Runtime.consoleAPICalled', (p) => {
      if (p.type === 'error' || p.type === 'assert')
        problems.push(`console.${p.type}: ${JSON.stringify(p.args)}`);
    });
    browser.on('Runtime.exceptionThrown', (p) =>
      problems.push(`exception: ${JSON.stringify(p.exceptionDetails)}`),
    );
    browser.on('Log.entryAdded', (p) => {
      const entry = p.entry as { level: string; text: string; url?: string };
      if (entry.level === 'error') problems.push(`log: ${entry.text} ${entry.url ?? ''}`);
    });
    await browser.send('Runtime.enable');
    await browser.send('Log.enable');
    await browser.send('Page.enable');
    const loaded = new Promise<void>((resolve) => browser.on('Page.loadEventFired', () => resolve()));
    await browser.send('Page.navigate', { url: `file://${file}` });
    await loaded;
  });

  after(async () => {
    await browser?.close();
  });

  test('renders without console errors, exceptions or failed loads', async () => {
    assert.equal(await browser.evaluate<string>('document.readyState'), 'complete');
    assert.match(await browser.evaluate<string>('document.title'), /Evaluation sch-nightly-4 · lvr-demo @ 4/);
    assert.deepEqual(problems, []);
  });

  test('every chart is present and laid out with its marks', async () => {
    const charts = await browser.evaluate<{ id: string; width: number; height: number; marks: number }[]>(`
      [...document.querySelectorAll('figure.chart')].map((f) => {
        const box = f.querySelector('svg').getBoundingClientRect();
        return { id: f.dataset.chart, width: box.width, height: box.height,
                 marks: f.querySelectorAll('rect.bar, circle.point, rect.cell').length };
      })`);
    assert.deepEqual(
      charts.map((c) => c.id),
      [
        'accuracy-synthetic-grounding',
        'accuracy-mmvp',
        'lvr-steps',
        'versions',
        'confusion-synthetic-grounding',
        'confusion-mmvp',
      ],
    );
    for (const chart of charts) {
      assert.ok(chart.width > 100 && chart.height > 100, `${chart.id} is laid out: ${JSON.stringify(chart)}`);
      assert.ok(chart.marks > 0, `${chart.id} has marks`);
    }
    // 5 groups (overall + 4 categories) x 4 decoding configs
    assert.equal(charts[0].marks, 20);
    // one point per steps value for each of the 2 benchmarks
    assert.equal(charts[2].marks, 8);
    // one point per model version for each of the 2 benchmarks
    assert.equal(charts[3].marks, 2 * expectedPoints);
  });

  test('the regression is flagged and the wrong answers show their images', async () => {
    assert.equal(
      await browser.evaluate<boolean>(`!!document.querySelector('.banner.regressed[data-regressed="true"]')`),
      true,
    );
    const images = await browser.evaluate<{ count: number; loaded: number }>(`(() => {
      const imgs = [...document.querySelectorAll('.card img')];
      return { count: imgs.length, loaded: imgs.filter((i) => i.complete && i.naturalWidth > 0).length };
    })()`);
    assert.ok(images.count >= 12, JSON.stringify(images));
    assert.equal(images.loaded, images.count);
  });

  test("screenshot: the page is painted with the charts' colours, not blank", async () => {
    const { data } = (await browser.send('Page.captureScreenshot', {
      format: 'png',
      captureBeyondViewport: false,
    })) as { data: string };
    const png = Buffer.from(data, 'base64');
    fs.writeFileSync(path.join(path.dirname(file), 'screenshot.png'), png);
    const image = sharp(png);
    const { width, height } = await image.metadata();
    assert.deepEqual([width, height], [1200, 900]);
    const { data: pixels, info } = await image.removeAlpha().raw().toBuffer({ resolveWithObject: true });
    let blue = 0;
    let dark = 0;
    for (let i = 0; i < pixels.length; i += info.channels) {
      const [r, g, b] = [pixels[i], pixels[i + 1], pixels[i + 2]];
      // bars of the first series are #2563eb (drawn at 85% opacity on white)
      if (Math.abs(r - 70) < 40 && Math.abs(g - 120) < 40 && b > 200) blue++;
      if (r < 80 && g < 80 && b < 80) dark++;
    }
    assert.ok(blue > 500, `chart bars visible in the screenshot (${blue} blue pixels)`);
    assert.ok(dark > 500, `text visible in the screenshot (${dark} dark pixels)`);
  });
});
