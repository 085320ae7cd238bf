import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';

/** The Debian `chromium` binary; installed with apt-get when missing (the test machines run as root). */
export function ensureChromium(): string {
  const find = (): string | undefined => {
    for (const name of ['chromium', 'chromium-browser']) {
      try {
        return execFileSync('which', [name], { encoding: 'utf8' }).trim() || undefined;
      } catch {
        /* not on PATH */
      }
    }
    return undefined;
  };
  const found = find();
  if (found) return found;
  execFileSync(
    'sh',
    ['-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium'],
    {
      stdio: 'inherit',
      timeout: 15 * 60_000,
    },
  );
  const installed = find();
  if (!installed) throw new Error('chromium is not installed and apt-get could not install it');
  return installed;
}

type Handler = (params: Record<string, unknown>) => void;

/** A headless Chromium with one page, driven over the DevTools protocol. */
export class HeadlessChromium {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly listeners = new Map<string, Handler[]>();
  private sessionId?: string;

  private constructor(
    private readonly child: ChildProcess,
    private readonly socket: WebSocket,
    private readonly profile: string,
  ) {
    socket.on('message', (data: WebSocket.RawData) => {
      const message = JSON.parse(data.toString()) as {
        id?: number;
        method?: string;
        params?: Record<string, unknown>;
        result?: unknown;
        error?: { message: string };
      };
      if (message.id !== undefined) {
        const waiter = this.pending.get(message.id);
        this.pending.delete(message.id);
        if (message.error) waiter?.reject(new Error(message.error.message));
        else waiter?.resolve(message.result);
      } else if (message.method) {
        for (const handler of this.listeners.get(message.method) ?? []) handler(message.params ?? {});
      }
    });
  }

  static async launch(binary: string, width = 1200, height = 900): Promise<HeadlessChromium> {
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'chromium-profile-'));
    const child = spawn(
      binary,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-dev-shm-usage',
        `--user-data-dir=${profile}`,
        `--window-size=${width},${height}`,
        '--remote-debugging-port=0',
        'about:blank',
      ],
      // Its own process group, so close() can stop the helper processes that outlive the browser process.
      { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
    );
    let stderr = '';
    const endpoint = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`chromium did not start:\n${stderr}`)), 60_000);
      child.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        const match = /DevTools listening on (ws:\/\/\S+)/.exec(stderr);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]);
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`chromium exited (${code}):\n${stderr}`));
      });
    });
    const socket = new WebSocket(endpoint, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    const browser = new HeadlessChromium(child, socket, profile);
    const { targetId } = (await browser.send('Target.createTarget', { url: 'about:blank' })) as {
      targetId: string;
    };
    const { sessionId } = (await browser.send('Target.attachToTarget', { targetId, flatten: true })) as {
      sessionId: string;
    };
    browser.sessionId = sessionId;
    await browser.send('Emulation.setDeviceMetricsOverride', {
      width,
      height,
      deviceScaleFactor: 1,
      mobile: false,
    });
    return browser;
  }

  send(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.nextId++;
    const message = { id, method, params, ...(this.sessionId ? { sessionId: this.sessionId } : {}) };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.send(JSON.stringify(message));
    });
  }

  on(event: string, handler: Handler): void {
    this.listeners.set(event, [...(this.listeners.get(event) ?? []), handler]);
  }

  async evaluate<T>(expression: string): Promise<T> {
    const { result, exceptionDetails } = (await this.send('Runtime.evaluate', {
      expression,
      returnByValue: true,
      awaitPromise: true,
    })) as { result: { value: T }; exceptionDetails?: { text: string } };
    if (exceptionDetails) throw new Error(`page script failed: ${exceptionDetails.text}`);
    return result.value;
  }

  async close(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      await exited;
    }
    this.socket.close();
    // Helper processes (zygote, utility) can still write into the profile after the browser exits (ENOTEMPTY).
    try {
      process.kill(-this.child.pid!, 'SIGKILL');
    } catch {
      /* the group is already gone */
    }
    fs.rmSync(this.profile, { recursive: true, force: true, maxRetries: 20, retryDelay: 100 });
  }
}
