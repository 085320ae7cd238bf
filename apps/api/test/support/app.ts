import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { createApp } from '../../src/app.factory';
import type { AppModuleOptions } from '../../src/app.module';
import type { ApiConfig } from '../../src/config/api-config';
import type { InferenceBackend } from '../../src/inference/backend';
import { JsonLogger } from '@lvr/service-kit';
import { RegistryLoader } from '../../src/registry/registry-loader';

/** An empty directory to use as the models dir when a test wants no models discovered. */
export function emptyDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'lvr-api-test-'));
}

/** Boots the API (not listening) with test config, waits for the startup model load. */
export async function bootApp(
  config: Partial<ApiConfig>,
  backend?: InferenceBackend,
  extra: Omit<AppModuleOptions, 'config' | 'backend'> = {},
): Promise<NestExpressApplication> {
  const app = await createApp({
    config: { modelsDir: emptyDir(), logLevel: 'silent', ...config },
    backend,
    logger: new JsonLogger('silent'),
    ...extra,
  });
  await app.init();
  await app.get(RegistryLoader).whenLoaded();
  return app;
}
