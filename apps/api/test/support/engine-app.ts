import type { AddressInfo } from 'node:net';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { ApiConfig } from '../../src/config/api-config';
import { EngineBackend } from '../../src/inference/engine-backend';
import { bootApp } from './app';
import { DEMO_BUNDLE } from './server-process';

export const DEMO_ID = 'lvr-tiny-demo';

/** The API in-process over the real engine (onnxruntime-node) and the committed demo bundle, on 127.0.0.1. */
export async function bootEngineApp(
  config: Partial<ApiConfig> = {},
): Promise<{ app: NestExpressApplication; url: string }> {
  const app = await bootApp(
    { models: [{ id: DEMO_ID, uri: DEMO_BUNDLE }], ...config },
    new EngineBackend({ threads: 1, maxModelLen: config.maxModelLen }),
  );
  await app.listen(0, '127.0.0.1');
  const port = (app.getHttpServer().address() as AddressInfo).port;
  return { app, url: `http://127.0.0.1:${port}` };
}
