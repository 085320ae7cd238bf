import fs from 'node:fs';
import path from 'node:path';
import type { TrainingRequest } from '@lvr/contracts';
import type { CreateOutcome, RunStore } from '../executor';
import { type RunRecord, type RunStatus, emptyStatus } from '../../runs/run-record';

/**
 * Run records of the local executor: one folder per run id under the state directory. Creating the folder is the
 * idempotency check (it exists = the run exists); records are replaced atomically (write, then rename).
 */
export class FileRunStore implements RunStore {
  private readonly records = new Map<string, RunRecord>();

  constructor(private readonly root: string) {
    fs.mkdirSync(root, { recursive: true });
  }

  runDir(runId: string): string {
    return path.join(this.root, runId);
  }

  async create(request: TrainingRequest, specHash: string): Promise<CreateOutcome> {
    try {
      fs.mkdirSync(this.runDir(request.runId));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const existing = await this.get(request.runId);
      if (existing) return { created: false, record: existing };
    }
    const record: RunRecord = {
      runId: request.runId,
      stage: request.stage,
      request,
      specHash,
      createdAt: new Date().toISOString(),
      status: emptyStatus(),
    };
    this.write(record);
    return { created: true, record };
  }

  async get(runId: string): Promise<RunRecord | undefined> {
    const cached = this.records.get(runId);
    if (cached) return cached;
    try {
      const record = JSON.parse(
        fs.readFileSync(path.join(this.runDir(runId), 'record.json'), 'utf8'),
      ) as RunRecord;
      this.records.set(runId, record);
      return record;
    } catch {
      return undefined;
    }
  }

  async list(): Promise<RunRecord[]> {
    const records: RunRecord[] = [];
    for (const entry of fs.readdirSync(this.root, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const record = await this.get(entry.name);
      if (record) records.push(record);
    }
    return records;
  }

  async saveStatus(runId: string, status: RunStatus): Promise<void> {
    const record = await this.get(runId);
    if (!record) return;
    record.status = status;
    this.write(record);
  }

  private write(record: RunRecord): void {
    this.records.set(record.runId, record);
    const file = path.join(this.runDir(record.runId), 'record.json');
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(record, null, 2));
    fs.renameSync(`${file}.tmp`, file);
  }
}
