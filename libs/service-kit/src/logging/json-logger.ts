import type { LoggerService } from '@nestjs/common';
import pino, { type DestinationStream, type Logger as Pino } from 'pino';
import { storage } from 'nestjs-pino/storage';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

export type LogFields = Record<string, unknown>;

/** JSON lines on stdout: `level` as a word, ISO `time`, then `msg` and the fields, in that order. */
export function createPino(level: LogLevel, destination?: DestinationStream): Pino {
  return pino(
    {
      level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    // Synchronous: the last lines before a shutdown must reach the pipe before the process exits.
    destination ?? pino.destination({ sync: true }),
  );
}

/**
 * The services' logger: structured lines through pino (one object per line: level, time, msg, then fields such as
 * request_id). Inside an HTTP request a line without its own `request_id` gets the request's, from the logger
 * nestjs-pino binds to the request. Doubles as Nest's logger so framework messages have the same shape.
 */
export class JsonLogger implements LoggerService {
  readonly pino: Pino;

  constructor(level: LogLevel = 'info', destination?: DestinationStream) {
    this.pino = createPino(level, destination);
  }

  enabled(level: LogLevel): boolean {
    return level !== 'silent' && this.pino.isLevelEnabled(level);
  }

  emit(level: Exclude<LogLevel, 'silent'>, msg: string, fields: LogFields = {}): void {
    if (!this.enabled(level)) return;
    const target = 'request_id' in fields ? this.pino : (storage.getStore()?.logger ?? this.pino);
    // `msg` inside the object keeps it ahead of the fields, where line-oriented readers look for it.
    target[level]({ msg, ...fields });
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
