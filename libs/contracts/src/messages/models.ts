import { Equals, IsNotEmpty, IsOptional, IsString, MaxLength, Matches } from 'class-validator';
import { MessageEnvelope } from './envelope';

export const MODELS_API_VERSION = 'lvr.models/v1';

/** `lvr.models.published`: a complete, verified bundle is available; the API may hot-load it. Key: modelId. */
export class ModelPublished extends MessageEnvelope {
  @Equals(MODELS_API_VERSION)
  apiVersion: string = MODELS_API_VERSION;

  @IsString()
  @IsNotEmpty()
  @MaxLength(128)
  @Matches(/^[A-Za-z0-9][A-Za-z0-9._:/-]*$/)
  modelId!: string;

  @IsString()
  @IsNotEmpty()
  @MaxLength(128)
  version!: string;

  @IsString()
  @IsNotEmpty()
  @MaxLength(1024)
  bundleUri!: string;

  @IsOptional()
  @IsString()
  @MaxLength(63)
  runId?: string;
}
