import { Controller, Get, Header, Inject } from '@nestjs/common';
import { ApiMetrics } from './api-metrics';

@Controller()
export class MetricsController {
  constructor(@Inject(ApiMetrics) private readonly metrics: ApiMetrics) {}

  /** Prometheus text exposition (open like the health probes; not under /v1). */
  @Get('metrics')
  @Header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8')
  render(): string {
    return this.metrics.registry.render();
  }
}
