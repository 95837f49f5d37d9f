// The names of the interfaces the agents create for a connection: the control plane picks them
// (they travel in the plan), the agents create them.
import { createHash } from 'node:crypto';

/**
 * Linux interface names are at most 15 bytes and, for userspace WireGuard, unique host-wide:
 * a 3-letter role, the id's first 4 letters or digits (to recognise it) and 8 hex digits of
 * its hash (so ids sharing a prefix, like "web-client-1" and "web-client-2", never collide).
 */
export const interfaceNameFor = (role: 'nsm' | 'nse', connectionId: string): string =>
  role + connectionId.replace(/[^A-Za-z0-9]/g, '').slice(0, 4).toLowerCase() + createHash('sha256').update(connectionId).digest('hex').slice(0, 8);
