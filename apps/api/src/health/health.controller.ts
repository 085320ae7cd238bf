import { Controller, Get, HttpCode, Inject, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiResponse } from '@nestjs/swagger';
import type { Response } from 'express';
import { ModelRegistry } from '../registry/model-registry';
import { Lifecycle } from '../common/lifecycle';

@Controller('health')
export class HealthController {
  constructor(
    @Inject(ModelRegistry) private readonly registry: ModelRegistry,
    @Inject(Lifecycle) private readonly lifecycle: Lifecycle,
  ) {}

  /** The process is up and its event loop answers. */
  @Get('live')
  @ApiOperation({ operationId: 'live', security: [] })
  @ApiOkResponse({ description: 'The process answers' })
  @HttpCode(200)
  live(): { status: 'ok' } {
    return { status: 'ok' };
  }

  /** Ready to serve: models loaded and not draining. 503 otherwise (Kubernetes readiness probe). */
  @Get('ready')
  @ApiOperation({ operationId: 'ready', security: [] })
  @ApiOkResponse({ description: 'Models loaded' })
  @ApiResponse({ status: 503, description: 'Loading, failed or draining' })
  ready(@Res({ passthrough: true }) res: Response): { status: string; models: string[] } {
    const r = this.registry.readiness();
    const draining = this.lifecycle.draining;
    const ok = r.ready && !draining;
    res.status(ok ? 200 : 503);
    return {
      status: draining ? 'draining' : ok ? 'ready' : notReadyStatus(r.state, r.models.length),
      models: r.models,
    };
  }
}

function notReadyStatus(state: string, models: number): string {
  if (state === 'failed') return 'failed';
  if (state === 'ready' && models === 0) return 'no_models';
  return 'loading';
}
