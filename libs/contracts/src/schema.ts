import 'reflect-metadata';
import { validationMetadatasToSchemas } from 'class-validator-jsonschema';
import { EvaluationRequest, EvaluationResult } from './messages/evaluation';
import { ModelPublished } from './messages/models';
import { TrainingCommand, TrainingEvent, TrainingRequest } from './messages/training';
import { DeadLetter } from './messages/dead-letter';
import { Topics, type TopicName } from './topics';

/** The messages whose JSON Schema is generated into libs/contracts/schema/ for non-TypeScript consumers. */
export const SCHEMA_MESSAGES = {
  'training-request': TrainingRequest,
  'training-event': TrainingEvent,
  'training-command': TrainingCommand,
  'evaluation-request': EvaluationRequest,
  'evaluation-result': EvaluationResult,
  'model-published': ModelPublished,
  'dead-letter': DeadLetter,
} as const;

/**
 * The topic each message travels on, written into its schema as `x-lvr-topic` so that non-TypeScript producers (the
 * Python worker) read topic names from the contract instead of keeping copies.
 */
export const SCHEMA_TOPICS: Record<keyof typeof SCHEMA_MESSAGES, TopicName> = {
  'training-request': Topics.trainingRequests,
  'training-event': Topics.trainingEvents,
  'training-command': Topics.trainingCommands,
  'evaluation-request': Topics.evaluationRequests,
  'evaluation-result': Topics.evaluationResults,
  'model-published': Topics.modelsPublished,
  'dead-letter': Topics.deadLetter,
};

type JsonSchema = Record<string, unknown>;

/** One self-contained draft-07 schema per message, nested DTOs inlined under `definitions`, with its topic. */
export function generateSchemas(): Record<keyof typeof SCHEMA_MESSAGES, JsonSchema> {
  const all = validationMetadatasToSchemas({ refPointerPrefix: '#/definitions/' }) as Record<
    string,
    JsonSchema
  >;
  const result = {} as Record<keyof typeof SCHEMA_MESSAGES, JsonSchema>;
  for (const [file, type] of Object.entries(SCHEMA_MESSAGES) as [
    keyof typeof SCHEMA_MESSAGES,
    { name: string },
  ][]) {
    const root = all[type.name];
    const definitions: Record<string, JsonSchema> = {};
    collectRefs(root, all, definitions);
    result[file] = {
      $schema: 'http://json-schema.org/draft-07/schema#',
      $id: `https://lvr.dev/schemas/${file}.schema.json`,
      title: type.name,
      'x-lvr-topic': SCHEMA_TOPICS[file],
      ...root,
      additionalProperties: false,
      definitions,
    };
  }
  return result;
}

function collectRefs(node: unknown, all: Record<string, JsonSchema>, into: Record<string, JsonSchema>): void {
  if (Array.isArray(node)) return node.forEach((n) => collectRefs(n, all, into));
  if (!node || typeof node !== 'object') return;
  for (const [key, value] of Object.entries(node)) {
    if (key === '$ref' && typeof value === 'string') {
      const name = value.replace('#/definitions/', '');
      if (!into[name] && all[name]) {
        into[name] = { ...all[name], additionalProperties: false };
        collectRefs(all[name], all, into);
      }
    } else {
      collectRefs(value, all, into);
    }
  }
}
