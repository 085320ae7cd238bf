/** Where and how to reach an S3-compatible store (MinIO in production and in the test stack). */
export interface ObjectStoreConfig {
  /** `http(s)://host:port` */
  endpoint: string;
  accessKey: string;
  secretKey: string;
  region: string;
  /** Multipart part size in bytes for streamed uploads; MinIO requires at least 5 MiB. */
  partSize?: number;
}

export class StorageConfigError extends Error {}

/** Reads LVR_S3_ENDPOINT, LVR_S3_ACCESS_KEY, LVR_S3_SECRET_KEY and LVR_S3_REGION (the stack exports them). */
export function objectStoreConfigFromEnv(env: NodeJS.ProcessEnv = process.env): ObjectStoreConfig {
  const missing = ['LVR_S3_ENDPOINT', 'LVR_S3_ACCESS_KEY', 'LVR_S3_SECRET_KEY'].filter((name) => !env[name]);
  if (missing.length) throw new StorageConfigError(`object store not configured: set ${missing.join(', ')}`);
  return {
    endpoint: env.LVR_S3_ENDPOINT as string,
    accessKey: env.LVR_S3_ACCESS_KEY as string,
    secretKey: env.LVR_S3_SECRET_KEY as string,
    region: env.LVR_S3_REGION || 'us-east-1',
  };
}
