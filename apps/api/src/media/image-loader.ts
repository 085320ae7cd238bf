import { promises as dns } from 'node:dns';
import fs from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import sharp from 'sharp';
import type { ImageLimitsConfig } from '../config/api-config';
import { isPublicAddress } from './address-policy';

/** Why an image was refused; the caller turns it into HTTP 400 naming the content part. */
export class ImageError extends Error {
  constructor(
    message: string,
    readonly code: string,
    /** The request field that named the image, once the caller knows it. */
    readonly param?: string,
  ) {
    super(message);
  }

  /** The same error, naming the request field the image came from. */
  at(param: string): ImageError {
    return new ImageError(this.message, this.code, param);
  }
}

export interface LoadedImage {
  bytes: Uint8Array;
  width: number;
  height: number;
  format: string;
}

/** DNS resolution, injectable so SSRF tests never leave the machine. */
export type Resolver = (hostname: string) => Promise<string[]>;

export const systemResolver: Resolver = async (hostname) =>
  (await dns.lookup(hostname, { all: true, verbatim: true })).map((a) => a.address);

const IMAGE_FORMATS = new Set(['jpeg', 'png', 'webp', 'gif']);

/**
 * Turns an `image_url` into checked image bytes: `data:` (base64 only), `http(s)://` (SSRF-guarded, pinned to the
 * checked address, timeouts, size cap, content-type check, limited redirects) and `file://` (allow-listed directory
 * only). Every image is then probed for format and pixel count.
 */
export class ImageLoader {
  constructor(
    private readonly limits: ImageLimitsConfig,
    private readonly resolve: Resolver = systemResolver,
  ) {}

  async load(url: string, signal?: AbortSignal): Promise<LoadedImage> {
    let bytes: Buffer;
    if (url.startsWith('data:')) bytes = this.fromDataUrl(url);
    else {
      let parsed: URL;
      try {
        parsed = new URL(url);
      } catch {
        throw new ImageError('image_url.url is not a valid URL', 'invalid_image_url');
      }
      if (parsed.protocol === 'http:' || parsed.protocol === 'https:') {
        if (!this.limits.remoteFetch)
          throw new ImageError('http(s) image URLs are disabled on this server', 'remote_fetch_disabled');
        bytes = await this.fromHttp(parsed, signal);
      } else if (parsed.protocol === 'file:') bytes = await this.fromFile(parsed);
      else
        throw new ImageError(`image URL scheme '${parsed.protocol}' is not supported`, 'unsupported_scheme');
    }
    return this.probe(bytes);
  }

  private fromDataUrl(url: string): Buffer {
    const comma = url.indexOf(',');
    const header = comma > 0 ? url.slice(5, comma) : '';
    const m = /^([a-z0-9.+-]+\/[a-z0-9.+-]+)?((?:;[a-z0-9-]+=[^;,]*)*);base64$/i.exec(header);
    if (!m)
      throw new ImageError(
        'Only base64 data URLs are supported (data:image/<type>;base64,...)',
        'invalid_data_url',
      );
    const mime = (m[1] ?? '').toLowerCase();
    if (!mime.startsWith('image/'))
      throw new ImageError(`data URL media type '${mime || 'none'}' is not an image`, 'invalid_content_type');
    const payload = url.slice(comma + 1);
    if (Math.floor((payload.length * 3) / 4) > this.limits.maxImageBytes + 3) {
      throw new ImageError(`image larger than ${this.limits.maxImageBytes} bytes`, 'image_too_large');
    }
    if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(payload.replace(/\s+/g, ''))) {
      throw new ImageError('data URL payload is not valid base64', 'invalid_data_url');
    }
    const bytes = Buffer.from(payload, 'base64');
    if (bytes.length === 0) throw new ImageError('data URL is empty', 'invalid_data_url');
    if (bytes.length > this.limits.maxImageBytes) {
      throw new ImageError(`image larger than ${this.limits.maxImageBytes} bytes`, 'image_too_large');
    }
    return bytes;
  }

  private async fromFile(url: URL): Promise<Buffer> {
    const root = this.limits.allowedLocalMediaDir;
    if (!root || url.host !== '')
      throw new ImageError('file:// image URLs are not allowed', 'file_url_not_allowed');
    let real: string;
    let realRoot: string;
    try {
      realRoot = await fs.realpath(root);
      real = await fs.realpath(decodeURIComponent(url.pathname));
    } catch {
      throw new ImageError('image file not found', 'image_not_found');
    }
    if (real !== realRoot && !real.startsWith(realRoot + path.sep)) {
      throw new ImageError(
        'file:// image URLs must point inside the allowed media directory',
        'file_url_not_allowed',
      );
    }
    const stat = await fs.stat(real);
    if (!stat.isFile()) throw new ImageError('image file not found', 'image_not_found');
    if (stat.size > this.limits.maxImageBytes) {
      throw new ImageError(`image larger than ${this.limits.maxImageBytes} bytes`, 'image_too_large');
    }
    return fs.readFile(real);
  }

  private isAllowListed(hostname: string): boolean {
    return this.limits.allowedPrivateHosts.includes(hostname.toLowerCase());
  }

  /** Resolves and checks the host; returns the address to connect to. */
  private async checkedAddress(url: URL): Promise<string> {
    const hostname = url.hostname.replace(/^\[|\]$/g, '');
    let addresses: string[];
    if (net.isIP(hostname)) addresses = [hostname];
    else {
      try {
        addresses = await this.resolve(hostname);
      } catch {
        throw new ImageError(`cannot resolve image host '${hostname}'`, 'image_fetch_failed');
      }
    }
    if (addresses.length === 0)
      throw new ImageError(`cannot resolve image host '${hostname}'`, 'image_fetch_failed');
    if (!this.isAllowListed(hostname) && !addresses.every(isPublicAddress)) {
      throw new ImageError(
        `image URL host '${hostname}' resolves to a private, loopback or link-local address`,
        'image_url_forbidden',
      );
    }
    return addresses[0];
  }

  private async fromHttp(start: URL, signal?: AbortSignal): Promise<Buffer> {
    let url = start;
    for (let hop = 0; ; hop++) {
      const address = await this.checkedAddress(url);
      const result = await this.request(url, address, signal);
      if ('location' in result) {
        if (hop >= this.limits.maxRedirects)
          throw new ImageError('too many redirects fetching the image', 'too_many_redirects');
        let next: URL;
        try {
          next = new URL(result.location, url);
        } catch {
          throw new ImageError('image redirect to an invalid URL', 'image_fetch_failed');
        }
        if (next.protocol !== 'http:' && next.protocol !== 'https:') {
          throw new ImageError('image redirect to a non-http(s) URL', 'unsupported_scheme');
        }
        url = next;
        continue;
      }
      return result.body;
    }
  }

  private request(
    url: URL,
    address: string,
    signal?: AbortSignal,
  ): Promise<{ body: Buffer } | { location: string }> {
    const limits = this.limits;
    const hostname = url.hostname.replace(/^\[|\]$/g, '');
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (error: Error | undefined, value?: { body: Buffer } | { location: string }): void => {
        if (settled) return;
        settled = true;
        clearTimeout(connectTimer);
        clearTimeout(totalTimer);
        signal?.removeEventListener('abort', onAbort);
        if (error) {
          req.destroy();
          reject(error);
        } else resolve(value!);
      };
      const onAbort = (): void => finish(new ImageError('request cancelled', 'cancelled'));
      const req = mod.request({
        host: address,
        port: url.port || (url.protocol === 'https:' ? 443 : 80),
        path: `${url.pathname}${url.search}`,
        method: 'GET',
        headers: { Host: url.host, Accept: 'image/*', 'User-Agent': 'lvr-api/1' },
        agent: false,
        servername: net.isIP(hostname) ? undefined : hostname,
      });
      const connectTimer = setTimeout(
        () => finish(new ImageError('timed out connecting to the image host', 'image_fetch_timeout')),
        limits.connectTimeoutMs,
      );
      const totalTimer = setTimeout(
        () => finish(new ImageError('timed out reading the image', 'image_fetch_timeout')),
        limits.connectTimeoutMs + limits.readTimeoutMs,
      );
      req.on('socket', (socket) => {
        socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () =>
          clearTimeout(connectTimer),
        );
      });
      req.setTimeout(limits.readTimeoutMs, () =>
        finish(new ImageError('timed out reading the image', 'image_fetch_timeout')),
      );
      req.on('error', (error: NodeJS.ErrnoException) =>
        finish(
          new ImageError(
            `could not fetch the image (${error.code ?? 'network error'})`,
            'image_fetch_failed',
          ),
        ),
      );
      req.on('response', (res) => {
        clearTimeout(connectTimer);
        const status = res.statusCode ?? 0;
        if ([301, 302, 303, 307, 308].includes(status)) {
          res.resume();
          const location = res.headers.location;
          if (!location)
            return finish(new ImageError('image redirect without a Location', 'image_fetch_failed'));
          return finish(undefined, { location });
        }
        if (status !== 200) {
          res.resume();
          return finish(new ImageError(`image URL answered HTTP ${status}`, 'image_fetch_failed'));
        }
        const type = String(res.headers['content-type'] ?? '').toLowerCase();
        if (!type.startsWith('image/')) {
          res.resume();
          return finish(
            new ImageError(
              `image URL content type '${type || 'none'}' is not an image`,
              'invalid_content_type',
            ),
          );
        }
        const declared = Number(res.headers['content-length'] ?? NaN);
        if (Number.isFinite(declared) && declared > limits.maxImageBytes) {
          return finish(new ImageError(`image larger than ${limits.maxImageBytes} bytes`, 'image_too_large'));
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > limits.maxImageBytes) {
            return finish(
              new ImageError(`image larger than ${limits.maxImageBytes} bytes`, 'image_too_large'),
            );
          }
          chunks.push(chunk);
        });
        res.on('end', () => finish(undefined, { body: Buffer.concat(chunks) }));
        res.on('error', () => finish(new ImageError('could not read the image', 'image_fetch_failed')));
      });
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      req.end();
    });
  }

  /** Format and size check without decoding the pixels. */
  private async probe(bytes: Buffer): Promise<LoadedImage> {
    let meta: Awaited<ReturnType<ReturnType<typeof sharp>['metadata']>>;
    try {
      meta = await sharp(bytes, { limitInputPixels: false, failOn: 'none' }).metadata();
    } catch {
      throw new ImageError('image could not be decoded (expected JPEG, PNG, WebP or GIF)', 'invalid_image');
    }
    const format = meta.format ?? 'unknown';
    if (!IMAGE_FORMATS.has(format) || !meta.width || !meta.height) {
      throw new ImageError('image could not be decoded (expected JPEG, PNG, WebP or GIF)', 'invalid_image');
    }
    const pixels = meta.width * meta.height;
    if (pixels > this.limits.maxImagePixels) {
      throw new ImageError(
        `image has ${meta.width}x${meta.height} pixels; the limit is ${this.limits.maxImagePixels} pixels`,
        'image_too_large',
      );
    }
    return {
      bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
      width: meta.width,
      height: meta.height,
      format,
    };
  }
}
