export interface KafkaSettings {
  brokers: string[];
  clientId: string;
}

export class MessagingConfigError extends Error {}

/** Brokers come from LVR_KAFKA_BROKERS (comma-separated host:port), which the test stack exports. */
export function kafkaSettingsFromEnv(clientId: string, env: NodeJS.ProcessEnv = process.env): KafkaSettings {
  const raw = env.LVR_KAFKA_BROKERS;
  if (!raw)
    throw new MessagingConfigError('Kafka not configured: set LVR_KAFKA_BROKERS (host:port[,host:port])');
  const brokers = raw
    .split(',')
    .map((b) => b.trim())
    .filter(Boolean);
  for (const broker of brokers) {
    if (!/^[^:\s]+:\d{1,5}$/.test(broker))
      throw new MessagingConfigError(`LVR_KAFKA_BROKERS has a bad entry: ${broker}`);
  }
  return { brokers, clientId };
}
