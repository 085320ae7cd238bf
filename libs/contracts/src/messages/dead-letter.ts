import { Equals, IsInt, IsOptional, IsString, MaxLength, Min } from 'class-validator';
import { MessageEnvelope } from './envelope';

export const DEAD_LETTER_API_VERSION = 'lvr.deadletter/v1';

/** `lvr.deadletter`: a message a consumer could not accept, kept whole with the reason, never silently dropped. */
export class DeadLetter extends MessageEnvelope {
  @Equals(DEAD_LETTER_API_VERSION)
  apiVersion: string = DEAD_LETTER_API_VERSION;

  @IsString() sourceTopic!: string;
  @IsInt() @Min(0) partition!: number;
  @IsString() offset!: string;
  @IsOptional() @IsString() key?: string;
  @IsString() @MaxLength(8192) reason!: string;
  /** The original value as received (UTF-8 text, or base64 when it was not valid UTF-8). */
  @IsString() payload!: string;
  @IsOptional() @IsString() payloadEncoding?: 'utf8' | 'base64';
  @IsString() consumer!: string;
}
