import fs from 'node:fs';
import path from 'node:path';
import type { ModelInfo } from '@lvr/engine';
import type { ModelSourceConfig } from '../config/api-config';
import type { InferenceBackend, LoadedModel } from '../inference/backend';
import type { JsonLogger } from '../logging/json-logger';
import type { BundleResolver } from './bundle-resolver';

/** A served model version. Leases keep a replaced version alive until its in-flight requests finish. */
export class ModelEntry {
  private leases = 0;
  private retired = false;
  private closed = false;

  constructor(
    readonly id: string,
    readonly uri: string,
    readonly model: LoadedModel,
    readonly created: number,
    readonly version: string | undefined,
    private readonly onClose: (entry: ModelEntry, error?: unknown) => void,
  ) {}

  get info(): ModelInfo {
    return this.model.info;
  }

  acquire(): () => void {
    this.leases += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.leases -= 1;
      this.closeIfIdle();
    };
  }

  retire(): void {
    this.retired = true;
    this.closeIfIdle();
  }

  private closeIfIdle(): void {
    if (!this.retired || this.leases > 0 || this.closed) return;
    this.closed = true;
    this.model.close().then(
      () => this.onClose(this),
      (error) => this.onClose(this, error),
    );
  }
}

export type RegistryState = 'idle' | 'loading' | 'ready' | 'failed';

export interface ModelLoadRequest extends ModelSourceConfig {
  /** Version label (e.g. from `lvr.models.published`). */
  version?: string;
}

/** Models by id: loads the configured bundles at startup and swaps in new versions without dropping requests. */
export class ModelRegistry {
  private readonly entries = new Map<string, ModelEntry>();
  private state: RegistryState = 'idle';
  private lastError: string | undefined;
  private readonly loading = new Map<string, Promise<ModelEntry>>();

  constructor(
    private readonly backend: InferenceBackend,
    private readonly resolver: BundleResolver,
    private readonly logger: JsonLogger,
  ) {}

  /** Bundles to load at startup: `LVR_MODELS`, else every bundle folder under the models directory (id = folder name). */
  static discover(configured: ModelSourceConfig[], modelsDir: string): ModelSourceConfig[] {
    if (configured.length > 0) return configured;
    if (!fs.existsSync(modelsDir)) return [];
    return fs
      .readdirSync(modelsDir, { withFileTypes: true })
      .filter((d) => d.isDirectory() && fs.existsSync(path.join(modelsDir, d.name, 'manifest.json')))
      .map((d) => ({ id: d.name, uri: path.join(modelsDir, d.name) }))
      .sort((a, b) => a.uri.localeCompare(b.uri));
  }

  async loadAll(sources: ModelSourceConfig[]): Promise<void> {
    this.state = 'loading';
    const failures: string[] = [];
    for (const source of sources) {
      try {
        await this.load(source);
      } catch (error) {
        failures.push(`${source.uri}: ${(error as Error).message}`);
      }
    }
    if (failures.length > 0) this.lastError = failures.join('; ');
    this.state = this.entries.size > 0 ? 'ready' : failures.length > 0 ? 'failed' : 'ready';
  }

  /** Loads (or reloads) one model; the previous version keeps serving its in-flight requests, then closes. */
  async load(source: ModelLoadRequest): Promise<ModelEntry> {
    const key = source.id ?? source.uri;
    const pending = this.loading.get(key);
    if (pending) return pending;
    const promise = this.doLoad(source).finally(() => this.loading.delete(key));
    this.loading.set(key, promise);
    return promise;
  }

  private async doLoad(source: ModelLoadRequest): Promise<ModelEntry> {
    const started = Date.now();
    this.logger.info('model loading', { uri: source.uri, model: source.id, version: source.version });
    let model: LoadedModel;
    try {
      model = await this.backend.load(await this.resolver.resolve(source.uri));
    } catch (error) {
      this.logger.emit('error', 'model load failed', {
        uri: source.uri,
        model: source.id,
        error: (error as Error).message,
      });
      throw error;
    }
    const id = source.id ?? model.info.id;
    const entry = new ModelEntry(
      id,
      source.uri,
      model,
      Math.floor(Date.now() / 1000),
      source.version,
      (closed, error) =>
        this.logger.info('model version closed', {
          model: closed.id,
          version: closed.version,
          error: error ? String(error) : undefined,
        }),
    );
    const previous = this.entries.get(id);
    this.entries.set(id, entry);
    previous?.retire();
    this.logger.info('model loaded', {
      model: id,
      version: source.version,
      ms: Date.now() - started,
      replaced: !!previous,
    });
    return entry;
  }

  get(id: string): ModelEntry | undefined {
    return this.entries.get(id);
  }

  list(): ModelEntry[] {
    return [...this.entries.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Ready once the startup load finished with at least one model. Errors are logged, not exposed here. */
  readiness(): { ready: boolean; state: RegistryState; models: string[] } {
    const models = this.list().map((e) => e.id);
    return { ready: this.state === 'ready' && models.length > 0, state: this.state, models };
  }

  get startupError(): string | undefined {
    return this.lastError;
  }

  async closeAll(): Promise<void> {
    for (const entry of this.entries.values()) entry.retire();
    this.entries.clear();
  }
}
