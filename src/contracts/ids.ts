// Ids derived from a key: a command sent again for the same reason gets the same id, so the
// command stream's dedupe and every idempotent handler see it once.
import { createHash } from 'node:crypto';

/** A command id that is the same for the same key: retries and redeliveries dedupe on it. */
export const stableId = (key: string): string => 'k' + createHash('sha256').update(key).digest('hex').slice(0, 40);
