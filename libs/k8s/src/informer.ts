import * as k8s from '@kubernetes/client-node';

export interface WatchedCache<T extends k8s.KubernetesObject> {
  list(): ReadonlyArray<T>;
  get(name: string): T | undefined;
  stop(): Promise<void>;
}

/**
 * A list+watch cache of one kind in one namespace that keeps itself alive: when the watch errors (API server
 * restart, expired resourceVersion) it lists again after a backoff, so no change is lost for good. `onChange` gets
 * every added, updated and deleted object; the returned promise resolves after the first full list.
 */
export async function watchNamespaced<T extends k8s.KubernetesObject>(
  kc: k8s.KubeConfig,
  path: string,
  list: () => Promise<k8s.KubernetesListObject<T>>,
  labelSelector: string,
  onChange: (object: T, deleted: boolean) => void,
  onError: (error: unknown) => void = () => undefined,
): Promise<WatchedCache<T>> {
  const informer = k8s.makeInformer<T>(kc, path, list, labelSelector);
  let stopped = false;
  let backoffMs = 500;
  informer.on('add', (o) => onChange(o, false));
  informer.on('update', (o) => onChange(o, false));
  informer.on('delete', (o) => onChange(o, true));
  informer.on('connect', () => {
    backoffMs = 500;
  });
  informer.on('error', (error) => {
    if (stopped) return;
    onError(error);
    setTimeout(() => {
      if (!stopped) informer.start().catch(onError);
    }, backoffMs);
    backoffMs = Math.min(backoffMs * 2, 15_000);
  });
  await informer.start();
  return {
    list: () => informer.list(),
    get: (name: string) => informer.list().find((o) => o.metadata?.name === name),
    stop: async () => {
      stopped = true;
      await informer.stop();
    },
  };
}
