#!/usr/bin/env node
// `npm test`: provision and start the loopback stack, run every TypeScript (node:test) and Python (pytest) suite,
// stop what this run started, and print `N passed, N failed` as the very last line.
//
// Flags: --only ts|py (one language), --keep-stack (leave services running), --files a.test.ts,b.test.ts
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ensureDir, isAlive, repoRoot, stateDir, tail } from '../stack/lib.mjs';
import { stackDown, stackEnv, stackUp } from '../stack/stack.mjs';
import { services } from '../stack/services/index.mjs';
import { parseJUnitCounts } from './junit.mjs';
import {
  accountFiles,
  addCounts,
  emptyCounts,
  pytestCounts,
  splitByKind,
  summaryLines,
} from './counting.mjs';

const args = process.argv.slice(2);
const only = valueOf('--only');
const keepStack = args.includes('--keep-stack') || process.env.LVR_KEEP_STACK === '1';
const explicitFiles = valueOf('--files')?.split(',');
// Per run: concurrent runs sharing one stack (LVR_STACK_DIR) must not read each other's counts.
const resultsDir = ensureDir(path.join(stateDir, 'test-results', `run-${process.pid}`));
const SEARCH_ROOTS = ['apps', 'libs', 'tests', 'scripts'];

function valueOf(flag) {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

function findTsTests() {
  const found = [];
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.test.ts')) found.push(path.relative(repoRoot, full));
    }
  };
  for (const root of SEARCH_ROOTS)
    if (fs.existsSync(path.join(repoRoot, root))) walk(path.join(repoRoot, root));
  return found.sort();
}

/**
 * Runs a child with inherited output while watching the stack's service processes: if one dies mid-run the child
 * is killed and the run fails naming the service and its log, instead of hanging on retries.
 */
function runWatched(label, command, commandArgs, env, watched) {
  return new Promise((resolve) => {
    const child = spawn(command, commandArgs, { cwd: repoRoot, env, stdio: 'inherit', detached: true });
    let deadService;
    const timer = setInterval(() => {
      for (const service of watched) {
        if (!isAlive(service.pid)) {
          deadService = service;
          process.stderr.write(
            `\n[test] ${service.name} (pid ${service.pid}) exited during the ${label} run; failing the run.\n` +
              `[test] last lines of ${service.log}:\n${tail(service.log, 15)}\n`,
          );
          clearInterval(timer);
          try {
            process.kill(-child.pid, 'SIGKILL');
          } catch {
            /* gone */
          }
          return;
        }
      }
    }, 1000);
    child.on('exit', (code, signal) => {
      clearInterval(timer);
      resolve({ code: code ?? 1, signal, deadService });
    });
  });
}

async function runTypeScript(env, watched) {
  const files = explicitFiles?.filter((f) => f.endsWith('.ts')) ?? findTsTests();
  if (files.length === 0) return { product: emptyCounts(), stack: emptyCounts(), emptyFiles: [] };
  const countsFile = path.join(resultsDir, 'ts-counts.json');
  fs.rmSync(countsFile, { force: true });
  const result = await runWatched(
    'TypeScript',
    process.execPath,
    [
      '-r',
      '@swc-node/register',
      '--test',
      '--test-concurrency=1',
      `--test-timeout=${process.env.LVR_TEST_TIMEOUT_MS || 300000}`,
      '--test-reporter=spec',
      '--test-reporter-destination=stdout',
      '--test-reporter=./scripts/test/count-reporter.mjs',
      `--test-reporter-destination=${countsFile}`,
      ...files,
    ],
    env,
    watched,
  );
  const reported = readReported(countsFile);
  if (!reported) {
    // The reporter never finished (the runner was killed): nothing it ran can count as passed.
    return {
      product: { ...emptyCounts(), failed: 1 },
      stack: emptyCounts(),
      emptyFiles: [],
      deadService: result.deadService,
    };
  }
  const { byFile, empty } = accountFiles(files, reported, repoRoot);
  const { product, stack } = splitByKind(byFile);
  // A crashed runner is a failure even when no test reported one.
  if (result.code !== 0 && product.failed + stack.failed === 0) product.failed = 1;
  return { product, stack, emptyFiles: empty, deadService: result.deadService };
}

function readReported(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

async function runPython(env, watched) {
  const python = env.LVR_PYTHON;
  const junit = path.join(resultsDir, 'pytest.xml');
  fs.rmSync(junit, { force: true });
  const testPaths = explicitFiles?.filter((f) => f.endsWith('.py')) ?? ['workers/tests'];
  const result = await runWatched(
    'Python',
    python,
    ['-m', 'pytest', '-q', '-p', 'no:cacheprovider', `--junitxml=${junit}`, ...testPaths],
    env,
    watched,
  );
  const junitCounts = fs.existsSync(junit) ? parseJUnitCounts(fs.readFileSync(junit, 'utf8')) : undefined;
  const { noTests, ...product } = pytestCounts(result.code, junitCounts);
  return {
    product,
    stack: emptyCounts(),
    emptyFiles: [],
    noPythonTests: noTests,
    deadService: result.deadService,
  };
}

async function main() {
  const product = emptyCounts();
  const stack = emptyCounts();
  const emptyFiles = [];
  let noPythonTests = false;
  let stackFailed = false;
  let started = [];
  try {
    const up = await stackUp(process.env.LVR_STACK_SERVICES?.split(',').map((s) => s.trim()));
    started = up.started;
    const env = { ...process.env, ...(await stackEnv()), LVR_STACK_FILE: path.join(stateDir, 'stack.json') };
    const watched = Object.entries(up.services)
      .filter(([, info]) => info.pid)
      .map(([name, info]) => ({ name, pid: info.pid, log: info.log }));
    const suites = [];
    if (!only || only === 'ts') suites.push(['TypeScript', () => runTypeScript(env, watched)]);
    if (!only || only === 'py') suites.push(['Python', () => runPython(env, watched)]);
    for (const [label, run] of suites) {
      const result = await run();
      const counts = addCounts(addCounts(emptyCounts(), result.product), result.stack);
      process.stdout.write(
        `[test] ${label}: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped\n`,
      );
      addCounts(product, result.product);
      addCounts(stack, result.stack);
      emptyFiles.push(...result.emptyFiles);
      noPythonTests ||= Boolean(result.noPythonTests);
      if (result.deadService) {
        process.stderr.write(`[test] not running the remaining suites: ${result.deadService.name} is down\n`);
        break;
      }
    }
  } catch (error) {
    process.stderr.write(`[test] the test stack could not be started: ${error.message}\n`);
    stackFailed = true;
  } finally {
    if (!keepStack && started.length) {
      await stackDown(services.filter((s) => started.includes(s.name)).map((s) => s.name)).catch((error) =>
        process.stderr.write(`[test] stopping the stack failed: ${error.message}\n`),
      );
    }
  }
  for (const line of summaryLines({ product, stack, emptyFiles, noPythonTests }))
    process.stdout.write(`${line}\n`);
  const totals = addCounts(addCounts(emptyCounts(), product), stack);
  if (stackFailed) totals.failed += 1;
  process.stdout.write(`${totals.passed} passed, ${totals.failed} failed\n`);
  process.exit(totals.failed > 0 ? 1 : 0);
}

await main();
