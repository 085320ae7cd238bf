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
