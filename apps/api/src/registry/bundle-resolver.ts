import type { BundleSource } from '@lvr/engine';

/** Turns a configured model URI into something the backend can load: a local path or a BundleSource. */
export interface BundleResolver {
  resolve(uri: string): Promise<string | BundleSource>;
}

export const BUNDLE_RESOLVER = Symbol('BundleResolver');

/** Local paths only; `s3://` URIs need a MinIO-backed resolver (libs/storage). */
export class LocalBundleResolver implements BundleResolver {
  async resolve(uri: string): Promise<string | BundleSource> {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(uri) && !uri.startsWith('file://')) {
      throw new Error(`cannot load ${uri}: no object-store resolver is configured (set LVR_S3_ENDPOINT)`);
    }
    return uri.startsWith('file://') ? new URL(uri).pathname : uri;
  }
}
