export * from './format';
export * from './validate';
export * from './source';
export * from './loader';
export * from './registry';
export * from './write';
