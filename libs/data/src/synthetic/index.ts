export * from './benchmark';
export * from './png';
export * from './question';
export * from './random';
export * from './raster';
export * from './scene';
export * from './training-records';
export * from './vocabulary';
