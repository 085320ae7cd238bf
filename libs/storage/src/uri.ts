export interface S3Location {
  bucket: string;
  /** Key or key prefix without a leading slash; a prefix given with a trailing slash keeps it. */
  key: string;
}

const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export function isS3Uri(value: string): boolean {
  return value.startsWith('s3://');
}

/** Parses `s3://bucket/some/key`, rejecting bucket names S3 would refuse and `..` segments. */
export function parseS3Uri(uri: string): S3Location {
  const match = /^s3:\/\/([^/]+)\/?(.*)$/.exec(uri);
  if (!match) throw new Error(`not an s3:// URI: ${uri}`);
  const [, bucket, key] = match;
  if (!BUCKET.test(bucket)) throw new Error(`invalid bucket name in ${uri}`);
  if (key.split('/').some((segment) => segment === '..')) throw new Error(`'..' is not allowed in ${uri}`);
  return { bucket, key };
}

export function joinKey(prefix: string, name: string): string {
  if (!prefix) return name;
  return prefix.endsWith('/') ? `${prefix}${name}` : `${prefix}/${name}`;
}
