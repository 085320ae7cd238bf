import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { MODELS_API_VERSION, ModelPublished, Topics } from '@lvr/contracts';
import { MessagePublisher, ValidatedIntake, type RawKafkaMessage } from '../src';

// The intake's options for announcement topics every replica replays (the API's lvr.models.published consumer):
// replays are not dead-lettered twice, additive fields are tolerated on request, and a valid message whose effect
// cannot succeed is dead-lettered through the same writer. The publisher is a recorder: this is pure logic.
class RecordingPublisher {
  readonly sent: Array<{ topic: string; key: string; body: Record<string, unknown> }> = [];
  async publish(topic: string, key: string, body: Record<string, unknown>): Promise<unknown> {
    this.sent.push({ topic, key, body });
    return body;
  }
}

const record = (value: unknown, offset = '0'): RawKafkaMessage => ({
  topic: Topics.modelsPublished,
  partition: 0,
  offset,
  key: 'model-a',
  value: JSON.stringify(value),
});
const announcement = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  apiVersion: MODELS_API_VERSION,
  id: randomUUID(),
  timestamp: new Date().toISOString(),
  modelId: 'model-a',
  version: 'v1',
  bundleUri: '/bundles/model-a-v1',
  ...extra,
});

function intakeWith(options: { forbidUnknown?: boolean } = {}) {
  const publisher = new RecordingPublisher();
  const intake = new ValidatedIntake(
    ModelPublished,
    publisher as unknown as MessagePublisher,
    'test-consumer',
    options,
  );
  return { publisher, intake };
}

describe('ValidatedIntake options', () => {
  it('dead-letters an invalid live message, but not an invalid replayed one', async () => {
    const { publisher, intake } = intakeWith();
    const replayed = await intake.accept(record({ modelId: '' }), { deadLetter: false });
    assert.equal(replayed.accepted, false);
    assert.equal(publisher.sent.length, 0);
    const live = await intake.accept(record({ modelId: '' }, '1'));
    assert.equal(live.accepted, false);
    assert.equal(publisher.sent.length, 1);
    assert.equal(publisher.sent[0].topic, Topics.deadLetter);
    assert.equal(publisher.sent[0].body.consumer, 'test-consumer');
  });

  it('refuses undeclared fields by default; forbidUnknown: false accepts them', async () => {
    const strict = await intakeWith().intake.accept(record(announcement({ newerField: 1 })));
    assert.equal(strict.accepted, false);
    const lenient = await intakeWith({ forbidUnknown: false }).intake.accept(
      record(announcement({ newerField: 1 })),
    );
    assert.equal(lenient.accepted, true);
  });

  it('reject() dead-letters a valid message whole, with the reason capped by the contract', async () => {
    const { publisher, intake } = intakeWith();
    const message = record(announcement());
    await intake.reject(message, 'x'.repeat(10_000));
    assert.equal(publisher.sent.length, 1);
    const dead = publisher.sent[0].body;
    assert.equal(dead.sourceTopic, Topics.modelsPublished);
    assert.equal(dead.payload, message.value);
    assert.equal((dead.reason as string).length, 8192);
  });
});
