// The SDK, one module for everyone outside this folder: the client that sends commands and asks
// queries (./meshClient.ts), keeping an endpoint registered (./registration.ts), and running an
// endpoint process (./endpointRun.ts).
export * from './meshClient.ts';
export * from './registration.ts';
export * from './endpointRun.ts';
