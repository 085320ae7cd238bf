import { Controller, Get, HttpCode, HttpException, HttpStatus } from '@nestjs/common';
import { Readiness } from './readiness';

/** Kubernetes probes: live while the process serves HTTP, ready once every dependency answered. */
@Controller('health')
export class HealthController {
  constructor(private readonly readiness: Readiness) {}

  @Get('live')
  @HttpCode(200)
  live(): { status: 'ok' } {
    return { status: 'ok' };
  }

  @Get('ready')
  ready(): { status: 'ready' } {
    const waiting = this.readiness.waitingFor;
    if (waiting.length)
      throw new HttpException({ status: 'not-ready', waitingFor: waiting }, HttpStatus.SERVICE_UNAVAILABLE);
    return { status: 'ready' };
  }
}
