import { Kafka, logLevel } from 'kafkajs';
import { COMPACTED_TOPICS } from '@lvr/contracts';
import type { KafkaSettings } from './config';

/**
 * Creates the topics that do not exist yet and waits for their leaders. Subscribing to a topic that the broker
 * is still auto-creating can fail with "This server does not host this topic-partition", so a consumer of topics
 * that may be new (fresh clusters, per-deployment topic names) makes them exist first.
 */
export async function ensureTopics(settings: KafkaSettings, topics: string[]): Promise<void> {
  const admin = new Kafka({ ...settings, logLevel: logLevel.WARN, retry: { retries: 8 } }).admin();
  await admin.connect();
  try {
    const missingNow = async (): Promise<string[]> => {
      const existing = new Set(await admin.listTopics());
      return [...new Set(topics)].filter((topic) => !existing.has(topic));
    };
    const missing = await missingNow();
    if (missing.length === 0) return;
    try {
      await admin.createTopics({
        topics: missing.map((topic) => ({
          topic,
          configEntries: COMPACTED_TOPICS.includes(topic)
            ? [{ name: 'cleanup.policy', value: 'compact' }]
            : [],
        })),
        waitForLeaders: true,
      });
    } catch (error) {
      // Another replica or a producer may have created them meanwhile; only a topic still missing is an error.
      if ((await missingNow()).length > 0) throw error;
    }
  } finally {
    await admin.disconnect();
  }
}
