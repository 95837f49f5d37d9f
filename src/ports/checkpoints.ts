// The checkpoint port: where a follower of the log (the process manager) has got to, so that a
// restarted control plane resumes from there. Adapter: infra/nats/checkpoints.ts (a KV bucket).

export interface Checkpoints {
  read(name: string): Promise<number>;
  write(name: string, position: number): Promise<void>;
}
