export * from './types';
export { EngineError, BundleError, RequestError } from './errors';
export type { BundleSource } from './bundle/source';
export { LocalDirSource } from './bundle/local-source';
export { LvrEngine } from './engine';
export type { EngineLoadOptions } from './engine';
export { Tokenizer } from './tokenizer';
