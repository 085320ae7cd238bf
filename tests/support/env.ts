/** Reads a variable the test stack exports; integration tests fail (never skip) when it is missing. */
export function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: run the suite through \`npm test\` or \`eval "$(node scripts/stack/cli.mjs env)"\``,
    );
  }
  return value;
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}
