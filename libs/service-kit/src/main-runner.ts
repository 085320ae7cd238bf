/** Entry-point glue shared by the services: start, or print why not and exit non-zero. */
export function runService(name: string, start: () => Promise<unknown>): void {
  start().catch((error: Error) => {
    process.stderr.write(`${name} failed to start: ${error.message}\n`);
    process.exit(1);
  });
}
