// Which namespace references a command may carry (src/contracts/netnsRef.ts): names, paths in
// /run/netns as the names they are, files directly in a directory the operator allows, and
// nothing that reaches the host's or another process's namespace however it is spelled.
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { checkNetnsDirs, workloadNetns } from '../../src/contracts/netnsRef.ts';
import { decodeCommand, netnsProblem } from '../../src/contracts/commands.ts';
import { suite } from '../lib/harness.ts';

const s = suite('netns references');

s('names are accepted, and a path in /run/netns is the name it holds', () => {
  assert.equal(workloadNetns('web'), E.right({ kind: 'named', name: 'web' }));
  assert.equal(workloadNetns('cni-1234.a_b'), E.right({ kind: 'named', name: 'cni-1234.a_b' }));
  assert.equal(workloadNetns('/run/netns/web'), E.right({ kind: 'named', name: 'web' }));
  assert.equal(workloadNetns('/var/run/netns/web'), E.right({ kind: 'named', name: 'web' }));
});

s('the host namespace and other processes\' are refused however they are spelled', () => {
  for (const v of [
    '/proc/1/ns/net',
    '/proc/self/ns/net',
    '../../proc/1/ns/net',
    'x/y',
    '.',
    '..',
    '/run/netns/../../proc/1/ns/net',
    '/run/netns/./web',
    '/run/netns//web',
    '/run/netns/',
    '/run/netns',
    '/run/netns/web/',
    '/run/netns/sub/web',
    '//run/netns/web',
    '/',
    '/etc/passwd',
  ]) {
    const r = workloadNetns(v);
    assert.ok(E.isLeft(r), `${v} refused`);
    if (E.isLeft(r)) assert.match(r.left, /only named namespaces \(ip netns add NAME\) are accepted; a path is accepted only in a directory the operator allows \(--netns-dir\), and none is allowed here/);
  }
});

s('an allowed directory admits its own files, and only those', () => {
  const dirs = E.getOrElseW(() => [] as string[])(checkNetnsDirs(['/run/containerd/netns/']));
  assert.equal(dirs, ['/run/containerd/netns']);
  assert.equal(workloadNetns('/run/containerd/netns/cni-77', dirs), E.right({ kind: 'path', path: '/run/containerd/netns/cni-77' }));
  for (const v of ['/run/containerd/netns/../../../proc/1/ns/net', '/run/containerd/netns/a/b', '/run/containerd/netns', '/run/containerd/other']) {
    const r = workloadNetns(v, dirs);
    assert.ok(E.isLeft(r), `${v} refused`);
    if (E.isLeft(r)) assert.match(r.left, /or a file directly in \/run\/containerd\/netns/);
  }
});

s('an operator cannot allow a directory that is not a plain absolute path', () => {
  for (const d of ['/', 'relative/dir', '/a/../proc', '/a//b', '/a/./b']) assert.ok(E.isLeft(checkNetnsDirs([d])), `${d} refused`);
  assert.equal(checkNetnsDirs(['/a/b', '/c']), E.right(['/a/b', '/c']));
});

s('the control plane\'s check names the field of a connection request and of an endpoint registration', () => {
  const req = decodeCommand('connection.request', 'alice', { id: 'c1', body: { connectionId: 'c1', networkService: 'web', clientNode: 'n1', clientNetns: '/proc/1/ns/net' } });
  assert.ok(E.isRight(req));
  if (E.isRight(req)) assert.match(netnsProblem(req.right, []) ?? '', /^body\.clientNetns: network namespace "\/proc\/1\/ns\/net": only named namespaces/);
  const ep = decodeCommand('endpoint.register', 'operator', { id: 'e1', body: { name: 'ep', networkServiceNames: ['web'], node: 'n1', netns: '/proc/self/ns/net' } });
  assert.ok(E.isRight(ep));
  if (E.isRight(ep)) assert.match(netnsProblem(ep.right, []) ?? '', /^body\.netns: /);
  const fine = decodeCommand('connection.request', 'alice', { id: 'c2', body: { connectionId: 'c2', networkService: 'web', clientNode: 'n1', clientNetns: 'ns1' } });
  if (E.isRight(fine)) assert.is(netnsProblem(fine.right, []), undefined);
});

s.run();
