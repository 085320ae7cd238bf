export * from './config';
export * from './uri';
export * from './object-store';
