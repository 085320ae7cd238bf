// `npm run benchmark:import -- <mmvp|vstar|blink> <downloaded folder> <target folder> [--corrected-labels]
//  [--subtasks Counting,Jigsaw|all]`: converts a benchmark the user downloaded into the shared format and validates it.
import { LocalBenchmarkSource } from '../source';
import { loadBenchmark } from '../loader';
import { BenchmarkContent, writeBenchmarkFolder } from '../write';
import { importBlink } from './blink';
import { importMmvp } from './mmvp';
import { importVstar } from './vstar';

async function main(argv: string[]): Promise<void> {
  const [kind, source, target] = argv;
  const flag = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  let content: BenchmarkContent;
  if (kind === 'mmvp') content = importMmvp(source, { correctedLabels: argv.includes('--corrected-labels') });
  else if (kind === 'vstar') content = importVstar(source);
  else if (kind === 'blink') {
    const subtasks = flag('--subtasks');
    content = await importBlink(source, { subtasks: subtasks === 'all' ? 'all' : subtasks?.split(',') });
  } else throw new Error('usage: benchmark:import <mmvp|vstar|blink> <downloaded folder> <target folder>');
  if (!source || !target) throw new Error('both the downloaded folder and the target folder are required');
  writeBenchmarkFolder(target, content);
  const loaded = await loadBenchmark(new LocalBenchmarkSource(target));
  process.stdout.write(
    `${JSON.stringify({ name: loaded.manifest.name, version: loaded.manifest.version, split: loaded.split, records: loaded.records.length, target })}\n`,
  );
}

main(process.argv.slice(2)).catch((error: Error) => {
  process.stderr.write(`${error.message}\n`);
  process.exit(1);
});
