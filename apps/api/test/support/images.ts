import sharp from 'sharp';

/** A small solid-colour PNG (real image bytes for data URLs and the local image server). */
export async function pngBytes(
  width = 56,
  height = 56,
  rgb: [number, number, number] = [200, 30, 30],
): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } })
    .png()
    .toBuffer();
}

export async function pngDataUrl(width = 56, height = 56): Promise<string> {
  return `data:image/png;base64,${(await pngBytes(width, height)).toString('base64')}`;
}
