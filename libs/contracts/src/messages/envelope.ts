import { IsISO8601, IsNotEmpty, IsString, Matches, MaxLength } from 'class-validator';

/** Ids travel as Kafka keys, Kubernetes label values and object-store path segments, so they share one shape. */
export const ID_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
export const ID_RULE =
  'lowercase letters, digits and dashes, 1-63 characters, starting and ending alphanumeric';

/** Fields every message carries: a schema version, a unique message id and when it was produced. */
export abstract class MessageEnvelope {
  @IsString()
  @IsNotEmpty()
  abstract apiVersion: string;

  /** Unique per message; consumers use it to drop redeliveries (at-least-once delivery). */
  @IsString()
  @IsNotEmpty()
  @MaxLength(128)
  id!: string;

  @IsISO8601({ strict: true })
  timestamp!: string;
}

export function idDecorator(): PropertyDecorator {
  return Matches(ID_PATTERN, { message: `$property must be ${ID_RULE}` });
}
