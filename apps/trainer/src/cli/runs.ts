// `npm run runs -- list [--phase P] | get ID | cancel ID | logs ID [--tail N]`: the trainer's operator API from a
// terminal. LVR_TRAINER_URL picks the trainer (default http://127.0.0.1:8081), LVR_API_KEY authenticates.
import type { RunView } from '../http/run-view';

const USAGE = `usage: npm run runs -- <command>
  list [--phase PHASE]   runs, newest first (PHASE: Accepted|Scheduled|Running|Retrying|Succeeded|Failed|Cancelled)
  get ID                 one run as JSON: phase, conditions, progress, checkpoints, bundle
  cancel ID              cancel a run (its checkpoints are kept)
  logs ID [--tail N]     last N lines of the worker log (default 100)
environment: LVR_TRAINER_URL (default http://127.0.0.1:8081), LVR_API_KEY`;

class CliError extends Error {}

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const value = args[i + 1];
  if (!value) throw new CliError(`${name} needs a value`);
  return value;
}

async function call(method: string, pathname: string): Promise<Response> {
  const base = (process.env.LVR_TRAINER_URL || 'http://127.0.0.1:8081').replace(/\/+$/, '');
  const key = process.env.LVR_API_KEY;
  let res: Response;
  try {
    res = await fetch(`${base}${pathname}`, {
      method,
      headers: key ? { Authorization: `Bearer ${key}` } : {},
    });
  } catch (error) {
    throw new CliError(`cannot reach the trainer at ${base}: ${(error as Error).message}`);
  }
  if (!res.ok) {
    const body = (await res.json().catch(() => undefined)) as { error?: { message?: string } } | undefined;
    throw new CliError(`${res.status}: ${body?.error?.message ?? res.statusText}`);
  }
  return res;
}

function progressOf(run: RunView): string {
  const p = run.progress;
  if (!p?.step) return '';
  return `${p.step}/${p.totalSteps ?? '?'}${p.loss !== undefined ? ` loss ${p.loss.toFixed(4)}` : ''}`;
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows
    .map((r) =>
      r
        .map((cell, c) => cell.padEnd(widths[c]))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export async function runCli(args: string[], out: (text: string) => void): Promise<void> {
  const [command, id] = args;
  const needId = () => {
    if (!id || id.startsWith('--')) throw new CliError(`${command} needs a run id\n${USAGE}`);
    return encodeURIComponent(id);
  };
  switch (command) {
    case 'list': {
      const phase = option(args, '--phase');
      const res = await call('GET', `/v1/runs${phase ? `?phase=${encodeURIComponent(phase)}` : ''}`);
      const { data } = (await res.json()) as { data: RunView[] };
      const rows = [['RUN', 'STAGE', 'PHASE', 'GPUS', 'PROGRESS', 'CREATED', 'REASON']];
      for (const run of data)
        rows.push([
          run.runId,
          run.stage,
          run.queued ? `${run.phase} (queued)` : run.phase,
          `${run.resources.nodes}x${run.resources.gpusPerNode}`,
          progressOf(run),
          run.createdAt,
          run.reason ?? '',
        ]);
      out(data.length ? table(rows) : 'no runs');
      return;
    }
    case 'get':
      out(JSON.stringify(await (await call('GET', `/v1/runs/${needId()}`)).json(), null, 2));
      return;
    case 'cancel': {
      const body = (await (await call('POST', `/v1/runs/${needId()}/cancel`)).json()) as { status: string };
      out(`${id}: ${body.status}`);
      return;
    }
    case 'logs': {
      const tail = option(args, '--tail') ?? '100';
      out(await (await call('GET', `/v1/runs/${needId()}/logs?tail=${encodeURIComponent(tail)}`)).text());
      return;
    }
    default:
      throw new CliError(USAGE);
  }
}

if (require.main === module) {
  runCli(process.argv.slice(2), (text) => process.stdout.write(`${text}\n`)).catch((error: Error) => {
    process.stderr.write(`${error.message}\n`);
    process.exit(error instanceof CliError ? 2 : 1);
  });
}
