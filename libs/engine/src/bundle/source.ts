/**
 * Where a bundle's files come from: a local directory, or libs/storage's MinIO source, which downloads into a cache
 * directory and returns local paths (onnxruntime loads graphs and external data from paths).
 */
export interface BundleSource {
  /** Human-readable location used in error messages, e.g. `/models/demo` or `s3://bucket/prefix/`. */
  readonly uri: string;
  /** Whether `relPath` exists in the bundle. */
  exists(relPath: string): Promise<boolean>;
  /** Reads a (small) file such as manifest.json or the completion marker. */
  readFile(relPath: string): Promise<Buffer>;
  /** A local filesystem path holding `relPath`, fetching it first if needed. */
  localPath(relPath: string): Promise<string>;
}
