export * from './csv';
export * from './mmvp';
export * from './vstar';
export * from './blink';
