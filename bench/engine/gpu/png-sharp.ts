/**
 * Stand-in for `sharp` in the GPU bench bundle only: one device call carries at most 64 MiB, and libvips (6.4 MiB
 * compressed) does not fit beside Node and onnxruntime. It implements exactly the calls libs/engine/src/vision/decode.ts
 * makes, for 8-bit RGB/RGBA non-interlaced PNGs (the bench's own image), with Node's zlib. Its decode time is part
 * of the TS side's TTFT (preprocessing), as libvips' would be.
 */
import zlib from 'node:zlib';

interface Png {
  width: number;
  height: number;
  channels: 3 | 4;
  pixels: Buffer;
}

function decodePng(bytes: Uint8Array): Png {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.readUInt32BE(0) !== 0x89504e47) throw new Error('not a PNG');
  let pos = 8;
  let width = 0;
  let height = 0;
  let channels: 3 | 4 = 3;
  const idat: Buffer[] = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos);
    const type = buf.toString('latin1', pos + 4, pos + 8);
    const body = buf.subarray(pos + 8, pos + 8 + len);
    if (type === 'IHDR') {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      const [depth, colour, , , interlace] = body.subarray(8, 13);
      if (depth !== 8 || (colour !== 2 && colour !== 6) || interlace !== 0)
        throw new Error('only 8-bit non-interlaced RGB/RGBA PNGs');
      channels = colour === 6 ? 4 : 3;
    } else if (type === 'IDAT') idat.push(body);
    else if (type === 'IEND') break;
    pos += 12 + len;
  }
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const pixels = Buffer.alloc(stride * height);
  const zero = Buffer.alloc(stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const out = pixels.subarray(y * stride, (y + 1) * stride);
    const prev = y > 0 ? pixels.subarray((y - 1) * stride, y * stride) : zero;
    const n = channels;
    // One loop per filter type (PNG spec §9.2): the branch stays out of the per-byte loop.
    if (filter === 0) line.copy(out);
    else if (filter === 1) for (let i = 0; i < stride; i++) out[i] = line[i] + (i >= n ? out[i - n] : 0);
    else if (filter === 2) for (let i = 0; i < stride; i++) out[i] = line[i] + prev[i];
    else if (filter === 3)
      for (let i = 0; i < stride; i++) out[i] = line[i] + (((i >= n ? out[i - n] : 0) + prev[i]) >> 1);
    else if (filter === 4)
      for (let i = 0; i < stride; i++) {
        const a = i >= n ? out[i - n] : 0;
        const b = prev[i];
        const c = i >= n ? prev[i - n] : 0;
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        out[i] = line[i] + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
      }
    else throw new Error(`PNG filter ${filter}`);
  }
  return { width, height, channels, pixels };
}

class Pipeline {
  constructor(private readonly bytes: Uint8Array) {}

  async metadata() {
    // The header alone (IHDR is the first chunk), as libvips reads it: no pixel decoding.
    const header = Buffer.from(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
    if (header.readUInt32BE(0) !== 0x89504e47 || header.toString('latin1', 12, 16) !== 'IHDR')
      throw new Error('not a PNG');
    const width = header.readUInt32BE(16);
    const height = header.readUInt32BE(20);
    return { format: 'png', width, height, orientation: 1, pageHeight: undefined };
  }

  rotate(): this {
    return this;
  }
  toColourspace(): this {
    return this;
  }
  removeAlpha(): this {
    return this;
  }
  raw(): this {
    return this;
  }

  async toBuffer() {
    const png = decodePng(this.bytes);
    let data = png.pixels;
    if (png.channels === 4) {
      data = Buffer.alloc(png.width * png.height * 3);
      for (let i = 0, j = 0; j < data.length; i += 4, j += 3) png.pixels.copy(data, j, i, i + 3);
    }
    return { data, info: { width: png.width, height: png.height, channels: 3 } };
  }
}

export default function sharp(bytes: Uint8Array): Pipeline {
  return new Pipeline(bytes);
}
