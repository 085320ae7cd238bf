import * as k8s from '@kubernetes/client-node';
import { isConflict, isNotFound } from './errors';

export interface LeaderElectionOptions {
  namespace: string;
  leaseName: string;
  identity: string;
  leaseDurationSeconds: number;
  /** How often the holder renews and the others retry; a third of the lease by default. */
  retryPeriodMs?: number;
}

/** `coordination.k8s.io` MicroTime: RFC 3339 with exactly six fractional digits. */
function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

function timeOf(value: unknown): number {
  if (value instanceof Date) return value.getTime();
  return typeof value === 'string' ? new Date(value).getTime() : 0;
}

/**
 * Leader election on a Lease, as client-go does it: whoever holds an unexpired lease leads and renews it every
 * retry period; the others retry. Updates carry the read resourceVersion, so two candidates never both win.
 */
export class LeaderElector {
  private readonly api: k8s.CoordinationV1Api;
  private timer?: NodeJS.Timeout;
  private leading = false;
  private lastRenewal = 0;
  private stopped = false;

  constructor(
    kc: k8s.KubeConfig,
    private readonly options: LeaderElectionOptions,
  ) {
    this.api = kc.makeApiClient(k8s.CoordinationV1Api);
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Calls `onStarted` once this candidate holds the lease, `onLost` if it cannot renew it in time. */
  start(onStarted: () => void, onLost: () => void): void {
    const period = this.options.retryPeriodMs ?? (this.options.leaseDurationSeconds * 1000) / 3;
    const tick = async () => {
      if (this.stopped) return;
      const held = await this.tryAcquireOrRenew().catch(() => false);
      const now = Date.now();
      if (held) {
        this.lastRenewal = now;
        if (!this.leading) {
          this.leading = true;
          onStarted();
        }
      } else if (this.leading && now - this.lastRenewal > this.options.leaseDurationSeconds * 1000) {
        this.leading = false;
        onLost();
      }
      if (!this.stopped) this.timer = setTimeout(tick, period);
    };
    void tick();
  }

  /** Stops renewing and hands the lease back, so another replica takes over without waiting for expiry. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.api.readNamespacedLease({
        name: this.options.leaseName,
        namespace: this.options.namespace,
      });
      if (lease.spec?.holderIdentity !== this.options.identity) return;
      lease.spec.holderIdentity = undefined;
      await this.api.replaceNamespacedLease({
        name: this.options.leaseName,
        namespace: this.options.namespace,
        body: lease,
      });
    } catch {
      /* it expires on its own */
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, leaseName: name, identity, leaseDurationSeconds } = this.options;
    const now = new Date();
    let lease: k8s.V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace });
    } catch (error) {
      if (!isNotFound(error)) throw error;
      try {
        await this.api.createNamespacedLease({
          namespace,
          body: {
            metadata: { name, namespace },
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds,
              acquireTime: microTime(now) as unknown as Date,
              renewTime: microTime(now) as unknown as Date,
              leaseTransitions: 0,
            },
          },
        });
        return true;
      } catch (createError) {
        if (isConflict(createError)) return false;
        throw createError;
      }
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity;
    const expires = timeOf(spec.renewTime) + (spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
    if (holder && holder !== identity && expires > now.getTime()) return false;
    const takingOver = holder !== identity;
    lease.spec = {
      ...spec,
      holderIdentity: identity,
      leaseDurationSeconds,
      renewTime: microTime(now) as unknown as Date,
      ...(takingOver
        ? {
            acquireTime: microTime(now) as unknown as Date,
            leaseTransitions: (spec.leaseTransitions ?? 0) + 1,
          }
        : {
            acquireTime: (spec.acquireTime
              ? microTime(new Date(timeOf(spec.acquireTime)))
              : undefined) as unknown as Date,
          }),
    };
    try {
      await this.api.replaceNamespacedLease({ name, namespace, body: lease });
      return true;
    } catch (error) {
      if (isConflict(error)) return false;
      throw error;
    }
  }
}
