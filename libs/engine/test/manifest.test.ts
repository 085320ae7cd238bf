import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { BundleError, LocalDirSource, LvrEngine, type GenerationRequest } from '../src';
import { openBundle } from '../src/bundle/loader';
import { parseManifest } from '../src/bundle/manifest';

// Which graphs a manifest may declare: the known ones (decoder_fused, the optional GPU serving flavour of the
// decoder, docs/bundle-format.md, included) load; any other is refused rather than silently ignored.
const DEMO = path.resolve(__dirname, '../../../models/lvr-tiny-demo');
const demoManifest = () => JSON.parse(fs.readFileSync(path.join(DEMO, 'manifest.json'), 'utf8'));
const FUSED = 'decoder_fused.onnx';
const dirs: string[] = [];

/** The demo bundle (weights hard-linked) with `decoder_fused.onnx` (not a real graph) and an edited manifest. */
function bundleWith(edit: (m: ReturnType<typeof demoManifest>) => void): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lvr-manifest-'));
  dirs.push(dir);
  for (const name of fs.readdirSync(DEMO))
    if (name !== 'manifest.json' && name !== '_COMPLETE')
      fs.linkSync(path.join(DEMO, name), path.join(dir, name));
  const fused = Buffer.from('not an onnx graph');
  fs.writeFileSync(path.join(dir, FUSED), fused);
  const m = demoManifest();
  m.files.push({ path: FUSED, size: fused.length, sha256: createHash('sha256').update(fused).digest('hex') });
  edit(m);
  const text = JSON.stringify(m, null, 2);
  fs.writeFileSync(path.join(dir, 'manifest.json'), text);
  const sha = createHash('sha256').update(text).digest('hex');
  fs.writeFileSync(path.join(dir, '_COMPLETE'), JSON.stringify({ manifest_sha256: sha }));
  return dir;
}

const refusedFor = (field: string, message: RegExp) => (e: unknown) =>
  e instanceof BundleError && e.field === field && message.test(e.message);

describe('bundle manifest: declared graphs', () => {
  after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

  it('accepts graphs.decoder_fused and types it as an optional file name', () => {
    const m = demoManifest();
    assert.equal(parseManifest(JSON.stringify(m)).graphs.decoder_fused, undefined);
    m.graphs.decoder_fused = FUSED;
    const parsed = parseManifest(JSON.stringify(m));
    assert.equal(parsed.graphs.decoder_fused, FUSED);
    assert.equal(parsed.graphs.decoder, 'decoder.onnx');
  });

  it('still refuses an unknown graph, naming it', () => {
    for (const name of ['decoder_other', 'mtp_head']) {
      const m = demoManifest();
      m.graphs.decoder_fused = FUSED;
      m.graphs[name] = `${name}.onnx`;
      assert.throws(
        () => parseManifest(JSON.stringify(m)),
        refusedFor(
          `graphs.${name}`,
          new RegExp(`graphs\\.${name} is an unknown graph; this engine cannot run`),
        ),
      );
    }
  });

  it('refuses a graphs.decoder_fused that is not a file name', () => {
    const m = demoManifest();
    m.graphs.decoder_fused = 7;
    assert.throws(
      () => parseManifest(JSON.stringify(m)),
      refusedFor('graphs.decoder_fused', /graphs\.decoder_fused must be a file name/),
    );
  });

  it('accepts graphs.decoder_fused_lvr beside decoder_fused, and refuses it alone or as a non-name', () => {
    const m = demoManifest();
    m.graphs.decoder_fused = FUSED;
    m.graphs.decoder_fused_lvr = 'decoder_fused_lvr.onnx';
    assert.equal(parseManifest(JSON.stringify(m)).graphs.decoder_fused_lvr, 'decoder_fused_lvr.onnx');
    delete m.graphs.decoder_fused;
    assert.throws(
      () => parseManifest(JSON.stringify(m)),
      refusedFor('graphs.decoder_fused_lvr', /needs graphs\.decoder_fused, whose data file it reads/),
    );
    m.graphs.decoder_fused = FUSED;
    m.graphs.decoder_fused_lvr = ['decoder_fused_lvr.onnx'];
    assert.throws(
      () => parseManifest(JSON.stringify(m)),
      refusedFor('graphs.decoder_fused_lvr', /must be a file name/),
    );
  });

  it('opens a bundle whose decoder_fused is listed in files, and refuses one where it is not', async () => {
    const ok = await openBundle(new LocalDirSource(bundleWith((m) => (m.graphs.decoder_fused = FUSED))));
    assert.equal(ok.manifest.graphs.decoder_fused, FUSED);
    assert.ok(ok.paths.get(FUSED)?.endsWith(FUSED));
    const unlisted = bundleWith((m) => (m.graphs.decoder_fused = 'decoder_fused_v2.onnx'));
    await assert.rejects(
      openBundle(new LocalDirSource(unlisted)),
      refusedFor(
        'graphs.decoder_fused',
        /graphs\.decoder_fused names decoder_fused_v2\.onnx, which is not in manifest\.files/,
      ),
    );
  });

  it('the CPU engine loads such a bundle and keeps running graphs.decoder (decoder_fused is never opened)', async () => {
    // decoder_fused.onnx here is not a graph: opening it would fail the load.
    const opts = { threads: 1, verifyChecksums: false };
    const request: GenerationRequest = {
      messages: [{ role: 'user', content: 'hi' }],
      sampling: { temperature: 0, ignoreEos: true, maxTokens: 4 },
    };
    const ids = async (engine: LvrEngine) => {
      const out: number[] = [];
      try {
        for await (const d of engine.generate(request)) out.push(...d.tokenIds);
      } finally {
        await engine.close();
      }
      return out;
    };
    const got = await ids(
      await LvrEngine.load(
        bundleWith((m) => (m.graphs.decoder_fused = FUSED)),
        opts,
      ),
    );
    assert.equal(got.length, 4);
    assert.deepEqual(got, await ids(await LvrEngine.load(DEMO, opts)));
  });
});

describe('bundle manifest: precision', () => {
  it('accepts the exporter precisions (int4-fp16 included) and refuses others', () => {
    for (const precision of ['fp32', 'fp16', 'int4', 'int4-fp16']) {
      const m = demoManifest();
      m.precision = precision;
      assert.equal(parseManifest(JSON.stringify(m)).precision, precision);
    }
    const m = demoManifest();
    m.precision = 'int8';
    assert.throws(() => parseManifest(JSON.stringify(m)), refusedFor('precision', /int8 is not supported/));
  });
});
