export * from './benchmark';
export * from './synthetic';
