export * from './config';
export * from './publisher';
export * from './intake';
export * from './processed-ids';
export * from './topics';
