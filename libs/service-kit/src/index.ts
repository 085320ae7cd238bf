export * from './readiness';
export * from './health.controller';
export * from './health.module';
export * from './kafka-service';
export * from './kafka-message';
export * from './main-runner';
