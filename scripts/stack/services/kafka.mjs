// Apache Kafka 4.x, single KRaft node (broker + controller), jars from Maven Central, on loopback.
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  cacheDir,
  ensureDir,
  envInt,
  isAlive,
  portOpen,
  readPid,
  repoRoot,
  runStep,
  sha256OfFiles,
  startDetached,
  stateDir,
  stopProcess,
  waitUntil,
} from '../lib.mjs';

const KAFKA_VERSION = '4.3.1';
const pom = path.join(repoRoot, 'infra', 'kafka', 'pom.xml');
// Keyed by the pom's hash so a changed dependency list resolves afresh.
const libsDir = path.join(cacheDir, `kafka-${KAFKA_VERSION}-${sha256OfFiles([pom])}`, 'libs');
const classPath = `${libsDir}/*`;

function ports() {
  return { broker: envInt('LVR_KAFKA_PORT', 39092), controller: envInt('LVR_KAFKA_CONTROLLER_PORT', 39093) };
}

function javaOptions(dataDir) {
  return [
    '-Xms256m',
    '-Xmx512m',
    '-XX:+UseG1GC',
    '-XX:TieredStopAtLevel=1',
    '-Djava.awt.headless=true',
    `-Dkafka.logs.dir=${path.join(dataDir, 'logs')}`,
    `-Dlog4j2.configurationFile=${path.join(repoRoot, 'infra', 'kafka', 'log4j2.yaml')}`,
    `-Dorg.xerial.snappy.tempdir=${ensureDir(path.join(dataDir, 'native'))}`,
    `-DZstdTempFolder=${path.join(dataDir, 'native')}`,
  ];
}

function serverProperties(dataDir, { broker, controller }) {
  return [
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@127.0.0.1:${controller}`,
    `listeners=PLAINTEXT://127.0.0.1:${broker},CONTROLLER://127.0.0.1:${controller}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${broker}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    'listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
    `log.dirs=${path.join(dataDir, 'data')}`,
    'num.partitions=3',
    'auto.create.topics.enable=true',
    'offsets.topic.replication.factor=1',
    'offsets.topic.num.partitions=3',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'transaction.state.log.num.partitions=1',
    'share.coordinator.state.topic.replication.factor=1',
    'share.coordinator.state.topic.min.isr=1',
    'group.initial.rebalance.delay.ms=0',
    'log.flush.interval.messages=1',
    '',
  ].join('\n');
}

export default {
  name: 'kafka',

  provisioned() {
    return fs.existsSync(libsDir) && fs.readdirSync(libsDir).some((f) => f.startsWith('kafka_2.13'));
  },

  async provision() {
    if (this.provisioned()) return;
    const tmp = `${libsDir}.partial`;
    fs.rmSync(tmp, { recursive: true, force: true });
    runStep('kafka-jars', 'mvn', [
      '-B',
      '-q',
      '-f',
      pom,
      'org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies',
      '-DincludeScope=runtime',
      `-DoutputDirectory=${tmp}`,
    ]);
    fs.rmSync(libsDir, { recursive: true, force: true });
    fs.renameSync(tmp, libsDir);
  },

  async start() {
    const p = ports();
    const dir = ensureDir(path.join(stateDir, 'kafka'));
    if (isAlive(readPid('kafka'))) return this.endpoints();
    // A fresh data dir each start: tests must not depend on leftovers, and a new cluster id never meets old logs.
    fs.rmSync(path.join(dir, 'data'), { recursive: true, force: true });
    const props = path.join(dir, 'server.properties');
    fs.writeFileSync(props, serverProperties(dir, p));
    let clusterId;
    // An id starting with '-' would be read by the CLI as an option.
    do clusterId = randomBytes(16).toString('base64url');
    while (clusterId.startsWith('-'));
    runStep('kafka-format', 'java', [
      ...javaOptions(dir),
      '-cp',
      classPath,
      'kafka.tools.StorageTool',
      'format',
      '-t',
      clusterId,
      '-c',
      props,
      '--ignore-formatted',
    ]);
    const { pid, logFile } = startDetached('kafka', 'java', [
      ...javaOptions(dir),
      '-cp',
      classPath,
      'kafka.Kafka',
      props,
    ]);
    await waitUntil('kafka', () => kafkaAnswers(p.broker), { pid, logFile, timeoutMs: 120000 });
    return this.endpoints();
  },

  async stop() {
    return stopProcess('kafka', 15000);
  },

  endpoints() {
    const p = ports();
    return {
      brokers: [`127.0.0.1:${p.broker}`],
      pid: readPid('kafka'),
      log: path.join(stateDir, 'kafka', 'kafka.log'),
    };
  },

  async running() {
    return isAlive(readPid('kafka')) && (await portOpen(ports().broker));
  },

  env(endpoints) {
    return { LVR_KAFKA_BROKERS: endpoints.brokers.join(',') };
  },
};

/** Ready means the broker answers a metadata request, not merely that its port is open. */
async function kafkaAnswers(port) {
  if (!(await portOpen(port))) return false;
  const { Kafka, logLevel } = await import('kafkajs');
  const admin = new Kafka({
    clientId: 'stack-probe',
    brokers: [`127.0.0.1:${port}`],
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
  }).admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    return cluster.brokers.length > 0 && cluster.controller !== null;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}
