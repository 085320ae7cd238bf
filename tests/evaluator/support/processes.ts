import path from 'node:path';
import { startServer, type ServerProcess } from '../../../apps/api/test/support/server-process';

export const REPO_ROOT = path.resolve(__dirname, '../../..');
export const DEMO_BUNDLE = path.join(REPO_ROOT, 'models', 'lvr-tiny-demo');

/** A real API process serving the demo bundle on a random port; `model` is the id clients use. */
export async function startDemoApi(model: string, env: Record<string, string> = {}): Promise<ServerProcess> {
  return startServer({ LVR_MODELS: `${model}=${DEMO_BUNDLE}`, LVR_LOG_LEVEL: 'info', ...env });
}

export type EvaluatorProcess = ServerProcess;

/** `apps/evaluator/src/main.ts` as its own process on a random port, ready once its consumer joined the group. */
export async function startEvaluatorProcess(env: Record<string, string>): Promise<EvaluatorProcess> {
  return startServer(env, 'apps/evaluator/src/main.ts');
}
