/** HTTP status of a failed Kubernetes API call (ApiException.code), or undefined for network errors. */
export function statusOf(error: unknown): number | undefined {
  const code = (error as { code?: unknown })?.code;
  return typeof code === 'number' ? code : undefined;
}

export const isNotFound = (error: unknown): boolean => statusOf(error) === 404;
export const isConflict = (error: unknown): boolean => statusOf(error) === 409;

/** Message of a Kubernetes API error: the Status object's message when the server sent one. */
export function describeK8sError(error: unknown): string {
  const body = (error as { body?: unknown })?.body;
  if (typeof body === 'string') {
    try {
      const status = JSON.parse(body) as { message?: string };
      if (status.message) return status.message;
    } catch {
      /* not JSON */
    }
  }
  if (body && typeof body === 'object' && 'message' in body)
    return String((body as { message: unknown }).message);
  return (error as Error)?.message ?? String(error);
}
