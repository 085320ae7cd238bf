import fs from 'node:fs';
import path from 'node:path';
import type { ModelInfo } from '@lvr/engine';
import type { ModelSourceConfig } from '../config/api-config';
import type { InferenceBackend, LoadedModel } from '../inference/backend';
import type { JsonLogger } from '@lvr/service-kit';
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

/** A bundle to load; `version` labels it (from `lvr.models.published`, or `id@version=` in `LVR_MODELS`). */
export type ModelLoadRequest = ModelSourceConfig;

/** One version of a model, as `/v1/models` lists it. */
export interface ModelVersionInfo {
  version: string;
  /** `<id>@<version>`: what a request's `model` names to address exactly this version. */
  ref: string;
  loaded: boolean;
  current: boolean;
}

/** `<id>@<version>` → its parts (ids never contain `@`; a version may). */
export function parseModelRef(ref: string): { id: string; version?: string } {
  const at = ref.indexOf('@');
  return at > 0 ? { id: ref.slice(0, at), version: ref.slice(at + 1) } : { id: ref };
}

/**
 * Models by id: loads the configured bundles at startup and swaps in new versions without dropping requests.
 * `<id>` is the current (newest) version; `<id>@<version>` addresses an exact version: the current one, a previous
 * one still loaded (the `maxExtraVersions` most recently used stay loaded), or a published one loaded on demand.
 */
export class ModelRegistry {
  private readonly entries = new Map<string, ModelEntry>();
  /** Loaded versions that are not current, `id@version` → entry, least recently used first. */
  private readonly extra = new Map<string, ModelEntry>();
  /** Every published version seen (`lvr.models.published`), id → version → bundle URI. */
  private readonly known = new Map<string, Map<string, string>>();
  private state: RegistryState = 'idle';
  private lastError: string | undefined;
  private readonly loading = new Map<string, Promise<ModelEntry>>();
  /** Readiness also waits for this (the hot-loader catching up on published versions at startup). */
  private catchingUp = false;
  private startupDone!: () => void;
  private readonly startup = new Promise<void>((resolve) => (this.startupDone = resolve));

  constructor(
    private readonly backend: InferenceBackend,
    private readonly resolver: BundleResolver,
    private readonly logger: JsonLogger,
    private readonly maxExtraVersions = 1,
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

  async loadAll(sources: ModelLoadRequest[]): Promise<void> {
    this.state = 'loading';
    const failures: string[] = [];
    for (const source of sources) {
      try {
        await this.load(source);
      } catch (error) {
        failures.push(`${source.uri}: ${(error as Error).message}`);
        this.logger.emit('error', 'model load failed', {
          uri: source.uri,
          model: source.id,
          error: (error as Error).message,
        });
      }
    }
    if (failures.length > 0) this.lastError = failures.join('; ');
    this.state = this.entries.size > 0 ? 'ready' : failures.length > 0 ? 'failed' : 'ready';
    this.startupDone();
  }

  /** Resolves once the startup load (`loadAll`) finished. */
  whenStartupLoaded(): Promise<void> {
    return this.startup;
  }

  /** Loads (or reloads) one model as its current version; the previous one finishes its requests (see `extra`). */
  async load(source: ModelLoadRequest): Promise<ModelEntry> {
    return this.once(`${source.id ?? source.uri}\u0000current`, () => this.doLoad(source, true));
  }

  private once(key: string, run: () => Promise<ModelEntry>): Promise<ModelEntry> {
    const pending = this.loading.get(key);
    if (pending) return pending;
    const promise = run().finally(() => this.loading.delete(key));
    this.loading.set(key, promise);
    return promise;
  }

  private async doLoad(source: ModelLoadRequest, makeCurrent: boolean): Promise<ModelEntry> {
    const started = Date.now();
    this.logger.info('model loading', { uri: source.uri, model: source.id, version: source.version });
    // A failure is the caller's to log: an error for a configured or announced model, a warning for a stale one.
    const model: LoadedModel = await this.backend.load(await this.resolver.resolve(source.uri));
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
    if (source.version !== undefined) this.remember(id, source.version, source.uri);
    if (!makeCurrent) {
      this.keepExtra(entry);
      this.logger.info('model version loaded on demand', { model: id, version: source.version });
      return entry;
    }
    const previous = this.entries.get(id);
    this.entries.set(id, entry);
    if (source.version !== undefined) this.dropExtra(`${id}@${source.version}`);
    if (previous && previous.version !== undefined && previous.version !== entry.version)
      this.keepExtra(previous);
    else previous?.retire();
    this.logger.info('model loaded', {
      model: id,
      version: source.version,
      executionProvider: model.info.executionProvider,
      decoder: model.info.decoder,
      gpuAttention: model.info.gpuAttention,
      fusedProjections: model.info.fusedProjections,
      ms: Date.now() - started,
      replaced: !!previous,
    });
    return entry;
  }

  /** The version became current again: it is no longer an extra one (the new entry replaces it). */
  private dropExtra(key: string): void {
    this.extra.get(key)?.retire();
    this.extra.delete(key);
  }

  /** Keeps a non-current version loaded, retiring the least recently used ones beyond `maxExtraVersions`. */
  private keepExtra(entry: ModelEntry): void {
    const key = `${entry.id}@${entry.version}`;
    this.extra.get(key)?.retire();
    this.extra.delete(key);
    this.extra.set(key, entry);
    for (const [k, old] of this.extra) {
      if (this.extra.size <= this.maxExtraVersions) break;
      this.extra.delete(k);
      old.retire();
    }
  }

  /** Records a published version (so `<id>@<version>` can be loaded on demand). */
  remember(id: string, version: string, uri: string): void {
    let versions = this.known.get(id);
    if (!versions) this.known.set(id, (versions = new Map()));
    versions.set(version, uri);
  }

  /** The current version of `id`. */
  get(id: string): ModelEntry | undefined {
    return this.entries.get(id);
  }

  /**
   * The entry a request's `model` names: `<id>` → the current version; `<id>@<version>` → that version, loaded on
   * demand when it was published but is not loaded. Undefined when neither exists (or the version fails to load).
   */
  async resolve(ref: string): Promise<ModelEntry | undefined> {
    const exact = this.entries.get(ref);
    if (exact) return exact;
    const { id, version } = parseModelRef(ref);
    if (version === undefined) return undefined;
    const current = this.entries.get(id);
    if (current?.version === version) return current;
    const key = `${id}@${version}`;
    const loaded = this.extra.get(key);
    if (loaded) {
      this.extra.delete(key); // most recently used last
      this.extra.set(key, loaded);
      return loaded;
    }
    const uri = this.known.get(id)?.get(version);
    if (uri === undefined || this.maxExtraVersions < 1) return undefined;
    try {
      return await this.once(key, () => this.doLoad({ id, uri, version }, false));
    } catch (error) {
      this.logger.emit('warn', 'model version not loadable on demand', {
        model: id,
        version,
        uri,
        error: (error as Error).message,
      });
      return undefined;
    }
  }

  /** Versions of `id`: the current one, loaded previous ones and published ones, newest publication last. */
  versions(id: string): ModelVersionInfo[] {
    const current = this.entries.get(id)?.version;
    const labels = new Set<string>(this.known.get(id)?.keys() ?? []);
    if (current !== undefined) labels.add(current);
    for (const key of this.extra.keys())
      if (parseModelRef(key).id === id) labels.add(parseModelRef(key).version!);
    return [...labels].map((version) => ({
      version,
      ref: `${id}@${version}`,
      loaded: version === current || this.extra.has(`${id}@${version}`),
      current: version === current,
    }));
  }

  list(): ModelEntry[] {
    return [...this.entries.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  /** The hot-loader holds readiness while it catches up on published versions at startup. */
  setCatchingUp(value: boolean): void {
    this.catchingUp = value;
  }

  /** Ready once the startup load finished with at least one model. Errors are logged, not exposed here. */
  readiness(): { ready: boolean; state: RegistryState; models: string[] } {
    const models = this.list().map((e) => e.id);
    return {
      ready: this.state === 'ready' && models.length > 0 && !this.catchingUp,
      state: this.state,
      models,
    };
  }

  get startupError(): string | undefined {
    return this.lastError;
  }

  async closeAll(): Promise<void> {
    for (const entry of [...this.entries.values(), ...this.extra.values()]) entry.retire();
    this.entries.clear();
    this.extra.clear();
  }
}
