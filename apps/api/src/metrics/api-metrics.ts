import { Counter, Gauge, Histogram, Registry } from './prometheus';
import type { SequenceScheduler } from '../scheduling/scheduler';

const LATENCY_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640,
  2560,
];
const ITL_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1,
  2.5, 5,
];

/** The API's Prometheus series (`lvr:` prefix, mirroring vLLM's names), labelled by `model_name`. */
export class ApiMetrics {
  readonly registry = new Registry();
  readonly timeToFirstToken: Histogram;
  readonly interTokenLatency: Histogram;
  readonly e2eLatency: Histogram;
  readonly queueTime: Histogram;
  readonly promptTokens: Counter;
  readonly generationTokens: Counter;
  readonly latentSteps: Counter;
  readonly requestSuccess: Counter;
  readonly requestsRejected: Counter;
  readonly httpRequests: Counter;

  constructor(scheduler: SequenceScheduler) {
    const r = this.registry;
    this.timeToFirstToken = r.register(
      new Histogram(
        'lvr:time_to_first_token_seconds',
        'Time from request arrival to the first generated token.',
        LATENCY_BUCKETS,
      ),
    );
    this.interTokenLatency = r.register(
      new Histogram(
        'lvr:inter_token_latency_seconds',
        'Time between consecutive generated tokens (latent steps included).',
        ITL_BUCKETS,
      ),
    );
    this.e2eLatency = r.register(
      new Histogram(
        'lvr:e2e_request_latency_seconds',
        'Time from request arrival to its last token.',
        LATENCY_BUCKETS,
      ),
    );
    this.queueTime = r.register(
      new Histogram(
        'lvr:request_queue_time_seconds',
        'Time a sequence waited for a generation slot.',
        LATENCY_BUCKETS,
      ),
    );
    r.register(
      new Gauge('lvr:num_requests_running', 'Sequences generating now.', () => [
        { labels: {}, value: scheduler.running },
      ]),
    );
    r.register(
      new Gauge('lvr:num_requests_waiting', 'Sequences admitted and waiting for a slot.', () => [
        { labels: {}, value: scheduler.waiting },
      ]),
    );
    this.promptTokens = r.register(
      new Counter('lvr:prompt_tokens_total', 'Prompt tokens processed (image tokens included).'),
    );
    this.generationTokens = r.register(
      new Counter('lvr:generation_tokens_total', 'Generated tokens (latent placeholders included).'),
    );
    this.latentSteps = r.register(
      new Counter('lvr:latent_steps_total', 'Decode steps whose input was a fed-back hidden state.'),
    );
    this.requestSuccess = r.register(
      new Counter('lvr:request_success_total', 'Finished sequences by finish reason (stop, length, abort).'),
    );
    this.requestsRejected = r.register(
      new Counter('lvr:requests_rejected_total', 'Requests refused before generating, by reason.'),
    );
    this.httpRequests = r.register(
      new Counter('lvr:http_requests_total', 'HTTP responses by method and status.'),
    );
  }
}
