import type { Response } from 'express';

/** Server-sent events over an Express response, with backpressure and disconnect awareness. */
export class SseWriter {
  constructor(private readonly res: Response) {}

  open(headers: Record<string, string> = {}): void {
    this.res.status(200);
    this.res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    this.res.setHeader('Cache-Control', 'no-cache, no-transform');
    this.res.setHeader('Connection', 'keep-alive');
    this.res.setHeader('X-Accel-Buffering', 'no');
    for (const [k, v] of Object.entries(headers)) this.res.setHeader(k, v);
    this.res.flushHeaders();
  }

  get closed(): boolean {
    return this.res.destroyed || this.res.writableEnded;
  }

  /** Writes one `data:` frame; waits for drain when the socket buffer is full. */
  async data(payload: unknown): Promise<void> {
    await this.raw(`data: ${typeof payload === 'string' ? payload : JSON.stringify(payload)}\n\n`);
  }

  private async raw(frame: string): Promise<void> {
    if (this.closed) return;
    if (this.res.write(frame)) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      this.res.on('drain', done);
      this.res.on('close', done);
    });
  }

  end(): void {
    if (!this.closed) this.res.end();
  }
}
