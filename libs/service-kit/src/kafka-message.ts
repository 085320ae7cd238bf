import { KafkaContext } from '@nestjs/microservices';
import { RawKafkaMessage } from '@lvr/messaging';

/** The consumed record as raw bytes plus its coordinates (the Kafka transport is configured with keepBinary). */
export function rawKafkaMessage(context: KafkaContext): RawKafkaMessage {
  const message = context.getMessage();
  return {
    topic: context.getTopic(),
    partition: context.getPartition(),
    offset: message.offset,
    key: message.key,
    value: message.value,
  };
}
