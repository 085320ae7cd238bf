import type { LoggerService } from '@nestjs/common';
import type { LogLevel } from '../config/api-config';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export type LogFields = Record<string, unknown>;

/**
 * Structured JSON lines on stdout (one object per line: time, level, msg, context, and fields such as request_id).
 * Doubles as Nest's logger so framework messages have the same shape.
 */
export class JsonLogger implements LoggerService {
  constructor(
    private readonly level: LogLevel = 'info',
    private readonly write: (line: string) => void = (line) => process.stdout.write(line + '\n'),
  ) {}

  enabled(level: LogLevel): boolean {
    return ORDER[level] >= ORDER[this.level] && this.level !== 'silent';
  }

  emit(level: Exclude<LogLevel, 'silent'>, msg: string, fields: LogFields = {}): void {
    if (!this.enabled(level)) return;
    let line: string;
    try {
      line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields });
    } catch {
      line = JSON.stringify({ time: new Date().toISOString(), level, msg });
    }
    this.write(line);
  }

  info(msg: string, fields?: LogFields): void {
    this.emit('info', msg, fields);
  }

  // LoggerService
  log(message: unknown, ...rest: unknown[]): void {
    this.emit('info', String(message), contextOf(rest));
  }
  error(message: unknown, ...rest: unknown[]): void {
    // Nest passes a stack as the 2nd argument; keep it out of the message but log it (server side only).
    const fields = contextOf(rest);
    this.emit('error', message instanceof Error ? message.message : String(message), fields);
  }
  warn(message: unknown, ...rest: unknown[]): void {
    this.emit('warn', String(message), contextOf(rest));
  }
  debug(message: unknown, ...rest: unknown[]): void {
    this.emit('debug', String(message), contextOf(rest));
  }
  verbose(message: unknown, ...rest: unknown[]): void {
    this.emit('debug', String(message), contextOf(rest));
  }
}

function contextOf(rest: unknown[]): LogFields {
  const fields: LogFields = {};
  const strings = rest.filter((r): r is string => typeof r === 'string');
  if (strings.length > 0) fields.context = strings[strings.length - 1];
  if (strings.length > 1) fields.stack = strings[0];
  return fields;
}

export const LOGGER = Symbol('JsonLogger');
