/** Base class so callers can tell engine failures apart from programming errors. */
export class EngineError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** The bundle is missing, incomplete, corrupt or inconsistent. `file`/`field` name the culprit. */
export class BundleError extends EngineError {
  constructor(
    message: string,
    readonly file?: string,
    readonly field?: string,
  ) {
    super(message, 'bundle_invalid');
  }
}

/** The request cannot be served (bad image, too long, invalid parameter). Maps to HTTP 400 with `code`. */
export class RequestError extends EngineError {
  constructor(
    message: string,
    readonly param?: string,
    code = 'invalid_request',
  ) {
    super(message, code);
  }
}
