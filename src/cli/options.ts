// Options every nsm command accepts.
export const common = {
  server: { type: 'string' },
  creds: { type: 'string' },
  'tls-ca': { type: 'string' },
  domain: { type: 'string' },
  json: { type: 'boolean' },
  actor: { type: 'string' },
  timeout: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;
