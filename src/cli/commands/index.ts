// Every command of the nsm command line, in the order of the overview (`nsm --help`). A
// subcommand with options of its own (endpoint run) is listed for the overview and reached
// through its command's `subcommands`.
import type { AnyCommand } from '../command.ts';
import { agent } from './agent.ts';
import { audit } from './audit.ts';
import { close } from './close.ts';
import { connect } from './connect.ts';
import { dashboard } from './dashboard.ts';
import { controlPlane } from './control-plane.ts';
import { endpoint } from './endpoint.ts';
import { endpointRun } from './endpoint-run.ts';
import { history } from './history.ts';
import { init } from './init.ts';
import { limits } from './limits.ts';
import { ls } from './ls.ts';
import { policy } from './policy.ts';
import { projections } from './projections.ts';
import { refresh } from './refresh.ts';
import { replay } from './replay.ts';
import { revoke } from './revoke.ts';
import { service } from './service.ts';
import { status } from './status.ts';
import { token } from './token.ts';
import { up } from './up.ts';
import { workflow } from './workflow.ts';

export const ALL_COMMANDS: readonly AnyCommand[] = [
  init,
  revoke,
  up,
  controlPlane,
  agent,
  endpointRun,
  service,
  endpoint,
  connect,
  refresh,
  close,
  ls,
  history,
  status,
  limits,
  workflow,
  policy,
  token,
  dashboard,
  replay,
  audit,
  projections,
];

/** The commands by the name typed first: `nsm <name> ...`. */
export const COMMANDS: ReadonlyMap<string, AnyCommand> = new Map(ALL_COMMANDS.filter((c) => !c.name.includes(' ')).map((c) => [c.name, c]));
