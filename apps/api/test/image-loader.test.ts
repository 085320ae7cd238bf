import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { defaultConfig, type ImageLimitsConfig } from '../src/config/api-config';
import { isPublicAddress } from '../src/media/address-policy';
import { ImageError, ImageLoader, type Resolver } from '../src/media/image-loader';
import { pngBytes } from './support/images';

// Everything here stays on 127.0.0.1: DNS is injected, and refused addresses are refused before any connection.

describe('address policy', () => {
  it('refuses loopback, private, link-local, CGNAT, multicast, unspecified and IPv4-in-IPv6 addresses', () => {
    for (const ip of [
      '127.0.0.1',
      '127.8.9.10',
      '10.1.2.3',
      '172.16.0.1',
      '172.31.255.255',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '224.0.0.1',
      '255.255.255.255',
      '::1',
      '::',
      'fe80::1',
      'fc00::1',
      'fd12:3456::1',
      '::ffff:127.0.0.1',
      '::ffff:7f00:1',
      '::ffff:10.0.0.1',
      '64:ff9b::a00:1',
      'ff02::1',
      '198.18.0.1',
    ]) {
      assert.equal(isPublicAddress(ip), false, ip);
    }
  });
  it('accepts public unicast addresses', () => {
    for (const ip of ['93.184.216.34', '8.8.8.8', '172.32.0.1', '2606:4700::1111', '1.1.1.1']) {
      assert.equal(isPublicAddress(ip), true, ip);
    }
  });
});

describe('ImageLoader', () => {
  let server: http.Server;
  let port: number;
  let hits = 0;
  let png: Buffer;
  let mediaDir: string;
  const names: Record<string, string[]> = {
    localhost: ['127.0.0.1'],
    'evil.example': ['10.0.0.5'],
    'metadata.example': ['169.254.169.254'],
    'mixed.example': ['93.184.216.34', '127.0.0.1'],
  };
  const resolver: Resolver = async (host) => {
    const found = names[host];
    if (!found) throw new Error('ENOTFOUND');
    return found;
  };
  const limits = (over: Partial<ImageLimitsConfig> = {}): ImageLimitsConfig => ({
    ...defaultConfig().images,
    connectTimeoutMs: 2000,
    readTimeoutMs: 300,
    maxImageBytes: 50_000,
    maxRedirects: 2,
    allowedPrivateHosts: ['localhost'],
    allowedLocalMediaDir: mediaDir,
    ...over,
  });
  const refused = async (loader: ImageLoader, url: string, code: string): Promise<void> => {
    await assert.rejects(
      loader.load(url),
      (e: unknown) => e instanceof ImageError && e.code === code,
      `${url} → ${code}`,
    );
  };

  before(async () => {
    png = await pngBytes(30, 20);
    mediaDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lvr-media-'));
    fs.writeFileSync(path.join(mediaDir, 'ok.png'), png);
    fs.symlinkSync('/etc/hostname', path.join(mediaDir, 'escape.png'));
    server = http.createServer((req, res) => {
      hits += 1;
      const base = `http://localhost:${port}`;
      switch (req.url) {
        case '/img.png':
          res.writeHead(200, { 'content-type': 'image/png' }).end(png);
          break;
        case '/text':
          res.writeHead(200, { 'content-type': 'text/html' }).end('<html>');
          break;
        case '/big':
          res.writeHead(200, { 'content-type': 'image/png' }).end(Buffer.alloc(60_000));
          break;
        case '/big-chunked':
          res.writeHead(200, { 'content-type': 'image/png', 'transfer-encoding': 'chunked' });
          for (let i = 0; i < 10; i++) res.write(Buffer.alloc(10_000));
          res.end();
          break;
        case '/slow':
          res.writeHead(200, { 'content-type': 'image/png' });
          res.write(png.subarray(0, 10)); // then stall
          break;
        case '/redirect':
          res.writeHead(302, { location: `${base}/img.png` }).end();
          break;
        case '/redirect-private':
          res.writeHead(302, { location: `http://127.0.0.1:${port}/img.png` }).end();
          break;
        case '/redirect-file':
          res.writeHead(302, { location: 'file:///etc/passwd' }).end();
          break;
        case '/loop':
          res.writeHead(302, { location: `${base}/loop` }).end();
          break;
        case '/missing':
          res.writeHead(404).end();
          break;
        default:
          res.writeHead(500).end();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('fetches an image from an allow-listed host and probes its size', async () => {
    const image = await new ImageLoader(limits(), resolver).load(`http://localhost:${port}/img.png`);
    assert.equal(image.width, 30);
    assert.equal(image.height, 20);
    assert.equal(image.format, 'png');
    assert.deepEqual(Buffer.from(image.bytes), png);
  });

  it('follows a same-host redirect', async () => {
    const image = await new ImageLoader(limits(), resolver).load(`http://localhost:${port}/redirect`);
    assert.equal(image.width, 30);
  });

  it('refuses private, loopback and link-local targets without sending a request (SSRF)', async () => {
    const loader = new ImageLoader(limits(), resolver);
    const before = hits;
    for (const url of [
      `http://127.0.0.1:${port}/img.png`,
      `http://[::1]:${port}/img.png`,
      `http://[::ffff:127.0.0.1]:${port}/img.png`,
      `http://2130706433:${port}/img.png`,
      `http://0x7f.1:${port}/img.png`,
      `http://0.0.0.0:${port}/img.png`,
      'http://169.254.169.254/latest/meta-data/',
      'http://10.0.0.1/a.png',
      'https://192.168.0.10/a.png',
      'http://evil.example/a.png',
      'http://metadata.example/a.png',
      'http://mixed.example/a.png',
    ]) {
      await refused(loader, url, 'image_url_forbidden');
    }
    // Without the allow-list even `localhost` is refused.
    await refused(
      new ImageLoader(limits({ allowedPrivateHosts: [] }), resolver),
      `http://localhost:${port}/img.png`,
      'image_url_forbidden',
    );
    assert.equal(hits, before, 'no request reached the loopback server');
  });

  it('re-checks every redirect target: private literals and non-http schemes are refused', async () => {
    const loader = new ImageLoader(limits(), resolver);
    await refused(loader, `http://localhost:${port}/redirect-private`, 'image_url_forbidden');
    await refused(loader, `http://localhost:${port}/redirect-file`, 'unsupported_scheme');
    await refused(loader, `http://localhost:${port}/loop`, 'too_many_redirects');
  });

  it('checks content type, size, status and read timeout', async () => {
    const loader = new ImageLoader(limits(), resolver);
    await refused(loader, `http://localhost:${port}/text`, 'invalid_content_type');
    await refused(loader, `http://localhost:${port}/big`, 'image_too_large');
    await refused(loader, `http://localhost:${port}/big-chunked`, 'image_too_large');
    await refused(loader, `http://localhost:${port}/missing`, 'image_fetch_failed');
    await refused(loader, `http://localhost:${port}/slow`, 'image_fetch_timeout');
    await refused(loader, 'http://unknown.example/a.png', 'image_fetch_failed');
  });

  it('refuses every http(s) URL without a connection when remote fetching is off', async () => {
    const before = hits;
    await refused(
      new ImageLoader(limits({ remoteFetch: false }), resolver),
      `http://localhost:${port}/img.png`,
      'remote_fetch_disabled',
    );
    assert.equal(hits, before);
  });

  it('refuses unsupported schemes and malformed data URLs', async () => {
    const loader = new ImageLoader(limits(), resolver);
    await refused(loader, 'ftp://example.com/a.png', 'unsupported_scheme');
    await refused(loader, 'gopher://example.com/', 'unsupported_scheme');
    await refused(loader, 'data:image/png,rawbytes', 'invalid_data_url');
    await refused(loader, 'data:text/html;base64,PGh0bWw+', 'invalid_content_type');
    await refused(loader, 'data:image/png;base64,!!!notbase64', 'invalid_data_url');
    await refused(
      loader,
      `data:image/png;base64,${Buffer.alloc(60_000).toString('base64')}`,
      'image_too_large',
    );
    await refused(loader, 'not a url', 'invalid_image_url');
  });

  it('file:// only inside the allow-listed directory (no traversal, no symlink escape)', async () => {
    const loader = new ImageLoader(limits(), resolver);
    const image = await loader.load(`file://${mediaDir}/ok.png`);
    assert.equal(image.height, 20);
    await refused(loader, `file://${mediaDir}/../../etc/hostname`, 'file_url_not_allowed');
    await refused(loader, `file://${mediaDir}/escape.png`, 'file_url_not_allowed');
    await refused(loader, 'file:///etc/passwd', 'file_url_not_allowed');
    await refused(
      new ImageLoader(limits({ allowedLocalMediaDir: undefined }), resolver),
      `file://${mediaDir}/ok.png`,
      'file_url_not_allowed',
    );
  });

  it('enforces the per-image pixel limit from the image header', async () => {
    const loader = new ImageLoader(limits({ maxImagePixels: 30 * 20 - 1 }), resolver);
    await refused(loader, `data:image/png;base64,${png.toString('base64')}`, 'image_too_large');
  });
});
