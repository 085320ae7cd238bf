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
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const out = pixels.subarray(y * stride, (y + 1) * stride);
    const prev = y > 0 ? pixels.subarray((y - 1) * stride, y * stride) : Buffer.alloc(stride);
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? out[i - channels] : 0;
      const b = prev[i];
      const c = i >= channels ? prev[i - channels] : 0;
      let pred = 0;
      if (filter === 1) pred = a;
      else if (filter === 2) pred = b;
      else if (filter === 3) pred = (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      out[i] = (line[i] + pred) & 0xff;
    }
  }
  return { width, height, channels, pixels };
}

class Pipeline {
  constructor(private readonly bytes: Uint8Array) {}

  async metadata() {
    const png = decodePng(this.bytes);
    return { format: 'png', width: png.width, height: png.height, orientation: 1, pageHeight: undefined };
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
