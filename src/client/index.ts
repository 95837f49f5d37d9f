// The SDK, one module for everyone outside this folder: the client that sends commands and asks
// queries (./meshClient.ts), and keeping an endpoint registered (./registration.ts).
export * from './meshClient.ts';
export * from './registration.ts';
export * from './access.ts';
