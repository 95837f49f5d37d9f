// Loaded into every Node.js process the soak starts (node --expose-gc --import <this file>):
// answers the soak's questions over the IPC channel it was started with.
//   { soakProbe: n }                 -> { soakProbe: n, memory } after a full garbage collection,
//                                       so heapUsed is what the process retains;
//   { soakProbe: n, snapshot: FILE } -> the same, after writing a heap snapshot to FILE.
// The channel is unreferenced: it never keeps a process alive, and a process started without one
// is left alone.
import { writeHeapSnapshot } from 'node:v8';

if (typeof process.send === 'function') {
  process.on('message', (m) => {
    if (!m || typeof m !== 'object' || typeof m.soakProbe !== 'number') return;
    const gc = globalThis.gc;
    if (gc) gc();
    let snapshot;
    if (typeof m.snapshot === 'string') {
      try {
        snapshot = writeHeapSnapshot(m.snapshot);
      } catch (e) {
        snapshot = `failed: ${e instanceof Error ? e.message : String(e)}`;
      }
    }
    process.send?.({ soakProbe: m.soakProbe, gcRun: typeof gc === 'function', memory: process.memoryUsage(), ...(snapshot ? { snapshot } : {}) }, undefined, undefined, () => undefined);
  });
  // After Node's own reaction to the new listener (it references the channel on the next tick).
  process.nextTick(() => setImmediate(() => process.channel?.unref()));
}
