import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Kafka, type Producer } from 'kafkajs';
import { MessagePublisher } from '../src';

// After a send that gave up (the broker was down), the publisher's next publish runs on a new producer: an idempotent
// producer that gave up may hold sequence numbers the broker never saw and fail every later send. kafkajs' producer
// is replaced by a recorder here: this is the publisher's own logic, the broker-restart suite runs it for real.
describe('MessagePublisher after a failed send', () => {
  const original = Kafka.prototype.producer;
  const made: Array<{ sent: string[]; disconnected: boolean }> = [];
  let failNext = false;
  Kafka.prototype.producer = function fakeProducer() {
    const state = { sent: [] as string[], disconnected: false };
    made.push(state);
    return {
      connect: async () => undefined,
      disconnect: async () => void (state.disconnected = true),
      send: async ({ messages }: { messages: Array<{ value: string }> }) => {
        if (failNext) {
          failNext = false;
          throw new Error('broker down');
        }
        state.sent.push(...messages.map((m) => JSON.parse(m.value).n));
        return [];
      },
    } as unknown as Producer;
  };
  after(() => {
    Kafka.prototype.producer = original;
  });

  it('throws, disconnects that producer and publishes the next message on a new one', async () => {
    const publisher = new MessagePublisher({ brokers: ['127.0.0.1:1'], clientId: 'test' });
    await publisher.publish<{ n: number }>('t', 'k', { n: 1 });
    failNext = true;
    await assert.rejects(publisher.publish<{ n: number }>('t', 'k', { n: 2 }), /broker down/);
    await publisher.publish<{ n: number }>('t', 'k', { n: 3 });
    await publisher.publish<{ n: number }>('t', 'k', { n: 4 });
    assert.equal(made.length, 2, 'one producer before the failure, one after');
    assert.deepEqual(made[0], { sent: [1], disconnected: true });
    assert.deepEqual(made[1], { sent: [3, 4], disconnected: false });
    await publisher.close();
    assert.equal(made[1].disconnected, true);
  });
});
