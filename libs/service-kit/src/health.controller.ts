import { Controller, Get, HttpCode, HttpException, HttpStatus } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiResponse } from '@nestjs/swagger';
import { Readiness } from './readiness';

/** Kubernetes probes: live while the process serves HTTP, ready once every dependency answered. */
@Controller('health')
export class HealthController {
  constructor(private readonly readiness: Readiness) {}

  @Get('live')
  @HttpCode(200)
  @ApiOperation({ operationId: 'live', security: [] })
  @ApiOkResponse({ schema: { type: 'object', properties: { status: { enum: ['ok'] } } } })
  live(): { status: 'ok' } {
    return { status: 'ok' };
  }

  @Get('ready')
  @ApiOperation({ operationId: 'ready', security: [] })
  @ApiOkResponse({ schema: { type: 'object', properties: { status: { enum: ['ready'] } } } })
  @ApiResponse({
    status: 503,
    description: 'Still waiting for a dependency',
    schema: {
      type: 'object',
      properties: {
        status: { enum: ['not-ready'] },
        waitingFor: { type: 'array', items: { type: 'string' } },
      },
    },
  })
  ready(): { status: 'ready' } {
    const waiting = this.readiness.waitingFor;
    if (waiting.length)
      throw new HttpException({ status: 'not-ready', waitingFor: waiting }, HttpStatus.SERVICE_UNAVAILABLE);
    return { status: 'ready' };
  }
}
