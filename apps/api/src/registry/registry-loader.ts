import { Inject, Injectable, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { API_CONFIG, ApiConfig } from '../config/api-config';
import { ModelRegistry } from './model-registry';

/** Starts loading the configured models once the app boots (liveness answers meanwhile); closes them on shutdown. */
@Injectable()
export class RegistryLoader implements OnApplicationBootstrap, OnApplicationShutdown {
  private startup: Promise<void> | undefined;

  constructor(
    @Inject(API_CONFIG) private readonly config: ApiConfig,
    @Inject(ModelRegistry) private readonly registry: ModelRegistry,
  ) {}

  onApplicationBootstrap(): void {
    this.startup = this.registry.loadAll(ModelRegistry.discover(this.config.models, this.config.modelsDir));
  }

  /** Resolves when the startup load finished (successfully or not). */
  whenLoaded(): Promise<void> {
    return this.startup ?? Promise.resolve();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.startup?.catch(() => undefined);
    await this.registry.closeAll();
  }
}
