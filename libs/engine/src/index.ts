export * from './types';
export { EngineError, BundleError, RequestError } from './errors';
export type { BundleSource } from './bundle/source';
export { LocalDirSource } from './bundle/local-source';
export { S3BundleSource, DEFAULT_BUNDLE_CACHE } from './bundle/s3-source';
export type { S3SourceOptions } from './bundle/s3-source';
export { LvrEngine } from './engine';
export type { EngineLoadOptions } from './engine';
export { Tokenizer } from './tokenizer';
