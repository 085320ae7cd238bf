export * from './names';
export * from './errors';
export * from './run-objects';
export * from './job-status';
export * from './leader-election';
export * from './informer';
