export { Tokenizer, StreamDecoder, TokenizerConfigError } from './tokenizer';
export type { DecodeOptions } from './tokenizer';
