/** Kafka topics of the platform (DESIGN.md "Contracts"). Keys are run or evaluation ids. */
export const Topics = {
  trainingRequests: 'lvr.training.requests',
  trainingEvents: 'lvr.training.events',
  trainingCommands: 'lvr.training.commands',
  evaluationRequests: 'lvr.evaluation.requests',
  evaluationResults: 'lvr.evaluation.results',
  modelsPublished: 'lvr.models.published',
  deadLetter: 'lvr.deadletter',
} as const;

export type TopicName = (typeof Topics)[keyof typeof Topics];

export const ALL_TOPICS: readonly TopicName[] = Object.values(Topics);

/** Topics kept compacted by key: a reader from the beginning sees the newest message per key (model id). */
export const COMPACTED_TOPICS: readonly string[] = [Topics.modelsPublished];
