/** A plain object (not null, not an array): a document or one of its sub-documents. */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
