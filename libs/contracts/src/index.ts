export * from './topics';
export * from './validation';
export * from './messages/envelope';
export * from './messages/training';
export * from './messages/models';
export * from './messages/evaluation';
export * from './messages/dead-letter';
export { SCHEMA_MESSAGES, SCHEMA_TOPICS, generateSchemas } from './schema';
