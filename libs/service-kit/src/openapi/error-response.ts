import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

const nullableString = (description: string) => ({
  anyOf: [{ type: 'string' }, { type: 'null' }],
  description,
});

/** The OpenAI-style error object every service answers with. */
export class ErrorBody {
  @ApiProperty() message!: string;
  @ApiProperty({ description: 'invalid_request_error, not_found_error, …' }) type!: string;
  @ApiPropertyOptional(nullableString('the request field at fault')) param?: string | null;
  @ApiPropertyOptional(nullableString('a machine-readable code')) code?: string | null;
}

export class ErrorResponse {
  @ApiProperty({ type: () => ErrorBody }) error!: ErrorBody;
}
