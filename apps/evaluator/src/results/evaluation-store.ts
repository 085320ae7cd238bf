import { ObjectNotFoundError, ObjectStore } from '@lvr/storage';
import { EvaluationIndexEntry, EvaluationResults, SampleRecord, VersionPoint } from './types';

const INDEX = 'index/';

function sampleKey(evalId: string, benchmark: string, config: string, sampleId: string): string {
  return `evaluations/${evalId}/samples/${encodeURIComponent(benchmark)}/${encodeURIComponent(config)}/${encodeURIComponent(sampleId)}.json`;
}

/** Everything the evaluator keeps, in one bucket: index entries, per-sample records, results, reports, schedules. */
export class EvaluationStore {
  constructor(
    private readonly store: ObjectStore,
    readonly bucket: string,
  ) {}

  async init(): Promise<void> {
    await this.store.ensureBucket(this.bucket);
  }

  uri(key: string): string {
    return `s3://${this.bucket}/${key}`;
  }

  resultsKey(evalId: string): string {
    return `evaluations/${evalId}/results.json`;
  }

  reportKey(evalId: string): string {
    return `evaluations/${evalId}/report.html`;
  }

  samplesKey(evalId: string): string {
    return `evaluations/${evalId}/samples.jsonl`;
  }

  async getEntry(evalId: string): Promise<EvaluationIndexEntry | undefined> {
    return this.getJson<EvaluationIndexEntry>(`${INDEX}${evalId}.json`);
  }

  async putEntry(entry: EvaluationIndexEntry): Promise<void> {
    await this.putJson(`${INDEX}${entry.evalId}.json`, entry);
  }

  async listEntries(): Promise<EvaluationIndexEntry[]> {
    const objects = await this.store.list(this.bucket, INDEX);
    const entries = await Promise.all(
      objects.map((o) => this.getJson<EvaluationIndexEntry>(o.key).catch(() => undefined)),
    );
    return entries.filter((e): e is EvaluationIndexEntry => e !== undefined);
  }

  /** Written as each sample completes: one object per sample, so a restart resumes from exactly these. */
  async putSample(evalId: string, sample: SampleRecord): Promise<void> {
    await this.putJson(sampleKey(evalId, sample.benchmark, sample.config, sample.sampleId), sample);
  }

  async listSamples(evalId: string): Promise<SampleRecord[]> {
    const objects = await this.store.list(this.bucket, `evaluations/${evalId}/samples/`);
    const samples: SampleRecord[] = [];
    // Bounded parallelism: thousands of small reads.
    for (let i = 0; i < objects.length; i += 32) {
      const batch = await Promise.all(objects.slice(i, i + 32).map((o) => this.getJson<SampleRecord>(o.key)));
      for (const sample of batch) if (sample) samples.push(sample);
    }
    return samples;
  }

  async putText(key: string, body: string, contentType: string): Promise<void> {
    await this.store.put(this.bucket, key, Buffer.from(body, 'utf8'), contentType);
  }

  async getText(key: string): Promise<string | undefined> {
    try {
      return (await this.store.get(this.bucket, key)).toString('utf8');
    } catch (error) {
      if (error instanceof ObjectNotFoundError) return undefined;
      throw error;
    }
  }

  async getResults(evalId: string): Promise<EvaluationResults | undefined> {
    return this.getJson<EvaluationResults>(this.resultsKey(evalId));
  }

  /** Finished evaluations of one schedule, oldest first. */
  async scheduleHistory(schedule: string): Promise<VersionPoint[]> {
    const objects = await this.store.list(this.bucket, `schedules/${schedule}/runs/`);
    const points = await Promise.all(objects.map((o) => this.getJson<VersionPoint>(o.key)));
    return points
      .filter((p): p is VersionPoint => p !== undefined)
      .sort((a, b) => a.finishedAt.localeCompare(b.finishedAt));
  }

  async addScheduleRun(schedule: string, point: VersionPoint): Promise<void> {
    await this.putJson(`schedules/${schedule}/runs/${point.finishedAt}-${point.evalId}.json`, point);
  }

  async getScheduleState(schedule: string): Promise<{ lastTick?: string } | undefined> {
    return this.getJson(`schedules/${schedule}/state.json`);
  }

  async putScheduleState(schedule: string, state: { lastTick: string }): Promise<void> {
    await this.putJson(`schedules/${schedule}/state.json`, state);
  }

  async getJson<T>(key: string): Promise<T | undefined> {
    const text = await this.getText(key);
    return text === undefined ? undefined : (JSON.parse(text) as T);
  }

  async putJson(key: string, value: unknown): Promise<void> {
    await this.putText(key, JSON.stringify(value), 'application/json');
  }
}
