// A second, private Kafka broker (same jars as the stack's) that one suite may stop and restart without disturbing
// the suites that share the stack's broker.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Kafka, logLevel } from 'kafkajs';

function kafkaLibs(): string {
  const cache = process.env.LVR_CACHE_DIR || path.join(os.homedir(), '.cache', 'lvr-platform');
  const dir = fs
    .readdirSync(cache)
    .filter((d) => d.startsWith('kafka-') && fs.existsSync(path.join(cache, d, 'libs')))
    .map((d) => path.join(cache, d, 'libs'))[0];
  if (!dir) throw new Error(`no Kafka jars under ${cache}: provision the stack first (npm test)`);
  return dir;
}

/** A Kafka cluster id: 16 random bytes in base64url, never starting with '-' (the CLI would read it as an option). */
function clusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

export class PrivateKafka {
  private child?: ChildProcess;
  private constructor(
    private readonly dir: string,
    private readonly port: number,
    private readonly controllerPort: number,
  ) {}

  get brokers(): string {
    return `127.0.0.1:${this.port}`;
  }

  static async create(): Promise<PrivateKafka> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lvr-private-kafka-'));
    const kafka = new PrivateKafka(dir, await freePort(), await freePort());
    fs.writeFileSync(
      path.join(dir, 'server.properties'),
      [
        'process.roles=broker,controller',
        'node.id=1',
        `controller.quorum.voters=1@127.0.0.1:${kafka.controllerPort}`,
        `listeners=PLAINTEXT://127.0.0.1:${kafka.port},CONTROLLER://127.0.0.1:${kafka.controllerPort}`,
        `advertised.listeners=PLAINTEXT://127.0.0.1:${kafka.port}`,
        'controller.listener.names=CONTROLLER',
        'inter.broker.listener.name=PLAINTEXT',
        'listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
        `log.dirs=${path.join(dir, 'data')}`,
        'num.partitions=1',
        'auto.create.topics.enable=true',
        'offsets.topic.replication.factor=1',
        'offsets.topic.num.partitions=1',
        'transaction.state.log.replication.factor=1',
        'transaction.state.log.min.isr=1',
        'share.coordinator.state.topic.replication.factor=1',
        'share.coordinator.state.topic.min.isr=1',
        'group.initial.rebalance.delay.ms=0',
        'log.flush.interval.messages=1',
        '',
      ].join('\n'),
    );
    const format = spawnSync(
      'java',
      [
        ...kafka.javaOptions(),
        'kafka.tools.StorageTool',
        'format',
        '-t',
        clusterId(),
        '-c',
        path.join(dir, 'server.properties'),
      ],
      { encoding: 'utf8', timeout: 120_000 },
    );
    if (format.status !== 0) throw new Error(`formatting the private broker failed:\n${format.stderr}`);
    return kafka;
  }

  private javaOptions(): string[] {
    return [
      '-Xms128m',
      '-Xmx384m',
      '-XX:TieredStopAtLevel=1',
      `-Dkafka.logs.dir=${path.join(this.dir, 'logs')}`,
      '-cp',
      `${kafkaLibs()}/*`,
    ];
  }

  /** Starts the broker on its data (kept across restarts) and resolves once it answers metadata requests. */
  async start(): Promise<void> {
    const log = fs.openSync(path.join(this.dir, 'broker.log'), 'a');
    this.child = spawn(
      'java',
      [...this.javaOptions(), 'kafka.Kafka', path.join(this.dir, 'server.properties')],
      {
        stdio: ['ignore', log, log],
      },
    );
    const deadline = Date.now() + 180_000;
    for (;;) {
      const admin = new Kafka({
        clientId: 'probe',
        brokers: [this.brokers],
        logLevel: logLevel.NOTHING,
        retry: { retries: 0 },
      }).admin();
      try {
        await admin.connect();
        const cluster = await admin.describeCluster();
        if (cluster.brokers.length > 0 && cluster.controller !== null) return;
      } catch {
        /* not yet */
      } finally {
        await admin.disconnect().catch(() => undefined);
      }
      if (this.child.exitCode !== null || Date.now() > deadline)
        throw new Error(
          `private broker did not start:\n${fs.readFileSync(path.join(this.dir, 'broker.log'), 'utf8').slice(-3000)}`,
        );
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 30_000).unref();
    });
  }

  async destroy(): Promise<void> {
    await this.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
