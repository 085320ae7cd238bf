import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { SequenceScheduler } from '../scheduling/scheduler';

const LATENCY_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640,
  2560,
];
const ITL_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1,
  2.5, 5,
];

type ModelLabel = 'model_name';

/**
 * The API's Prometheus series (`lvr:` prefix, mirroring vLLM's names), labelled by `model_name`, plus prom-client's
 * process, heap, GC and event-loop-lag series. One registry per app, so several apps in one process (tests) do not
 * share counters.
 */
export class ApiMetrics {
  readonly registry = new Registry();
  readonly timeToFirstToken: Histogram<ModelLabel>;
  readonly interTokenLatency: Histogram<ModelLabel>;
  readonly e2eLatency: Histogram<ModelLabel>;
  readonly queueTime: Histogram<ModelLabel>;
  readonly promptTokens: Counter<ModelLabel>;
  readonly generationTokens: Counter<ModelLabel>;
  readonly latentSteps: Counter<ModelLabel>;
  readonly requestSuccess: Counter<ModelLabel | 'finished_reason'>;
  readonly requestsRejected: Counter<'reason'>;
  readonly httpRequests: Counter<'method' | 'status'>;

  constructor(scheduler: SequenceScheduler) {
    const registers = [this.registry];
    const perModel = (name: string, help: string, buckets: number[]): Histogram<ModelLabel> =>
      new Histogram({ name, help, buckets, labelNames: ['model_name'], registers });
    const modelCounter = (name: string, help: string): Counter<ModelLabel> =>
      new Counter({ name, help, labelNames: ['model_name'], registers });
    this.timeToFirstToken = perModel(
      'lvr:time_to_first_token_seconds',
      'Time from request arrival to the first generated token.',
      LATENCY_BUCKETS,
    );
    this.interTokenLatency = perModel(
      'lvr:inter_token_latency_seconds',
      'Time between consecutive generated tokens (latent steps included).',
      ITL_BUCKETS,
    );
    this.e2eLatency = perModel(
      'lvr:e2e_request_latency_seconds',
      'Time from request arrival to its last token.',
      LATENCY_BUCKETS,
    );
    this.queueTime = perModel(
      'lvr:request_queue_time_seconds',
      'Time a sequence waited for a generation slot.',
      LATENCY_BUCKETS,
    );
    new Gauge({
      name: 'lvr:num_requests_running',
      help: 'Sequences generating now.',
      registers,
      collect() {
        this.set(scheduler.running);
      },
    });
    new Gauge({
      name: 'lvr:num_requests_waiting',
      help: 'Sequences admitted and waiting for a slot.',
      registers,
      collect() {
        this.set(scheduler.waiting);
      },
    });
    this.promptTokens = modelCounter(
      'lvr:prompt_tokens_total',
      'Prompt tokens processed (image tokens included).',
    );
    this.generationTokens = modelCounter(
      'lvr:generation_tokens_total',
      'Generated tokens (latent placeholders included).',
    );
    this.latentSteps = modelCounter(
      'lvr:latent_steps_total',
      'Decode steps whose input was a fed-back hidden state.',
    );
    this.requestSuccess = new Counter({
      name: 'lvr:request_success_total',
      help: 'Finished sequences by finish reason (stop, length, abort).',
      labelNames: ['model_name', 'finished_reason'],
      registers,
    });
    this.requestsRejected = new Counter({
      name: 'lvr:requests_rejected_total',
      help: 'Requests refused before generating, by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.httpRequests = new Counter({
      name: 'lvr:http_requests_total',
      help: 'HTTP responses by method and status.',
      labelNames: ['method', 'status'],
      registers,
    });
    collectDefaultMetrics({ register: this.registry });
  }
}
