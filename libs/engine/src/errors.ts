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

/**
 * The request cannot be served (bad image, too long, invalid setting); retrying the same request fails the same way.
 * `field` names the culprit as a path into `GenerationRequest` (`messages`, `image`, `lvr.steps`,
 * `sampling.logitBias`, `topLogprobs`); callers translate it into their own vocabulary.
 */
export class RequestError extends EngineError {
  constructor(
    message: string,
    readonly field?: string,
    code = 'invalid_request',
  ) {
    super(message, code);
  }
}
