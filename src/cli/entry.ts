// The process edge of the nsm command line; bin/nsm runs this file. It runs main (src/cli/main.ts)
// on the process's arguments and exits with its code. Every way out flushes stdout and stderr
// first (infra/stdio.ts: a pipe would otherwise lose all but its first 64 KiB), and child
// processes never outlive this one (infra/ownedChild.ts: the exit hook, the parent-death signal
// or the watchdog).
import { signalOwnedChildren } from '../../infra/ownedChild.ts';
import { exitWhenFlushed, handleClosedPipes } from '../../infra/stdio.ts';
import { env } from '../client/index.ts';
import { commandOf, main } from './main.ts';

const argv = process.argv.slice(2);
const command = commandOf(argv);

handleClosedPipes();
const fatal = (e: unknown) => {
  const debug = env('NSM_LOG_LEVEL') === 'debug';
  const text = debug && e instanceof Error ? (e.stack ?? e.message) : (e instanceof Error ? e.message : String(e)).split('\n')[0];
  process.stderr.write(`nsm ${command?.name ?? ''}: unexpected error: ${text}\n`);
  // At once, before anything else can go wrong: the exit hook would do it too, after the flush.
  signalOwnedChildren('SIGTERM');
  void exitWhenFlushed(1);
};
// Long-running processes (up, control-plane, agent) have their own policy: stop in order, then
// exit (src/runtime/processes.ts exitOnFatal).
if (!command?.longRunning) {
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);
}
await exitWhenFlushed(await main(argv));
