// A minimal DNS responder for tests (run inside an endpoint's namespace): answers A and AAAA
// questions for the names given as `NAME=ADDRESS` arguments over UDP port 53, on every address
// of both families (one dual-stack socket); any other name is NXDOMAIN. Prints "listening" once
// bound and one "answered NAME TYPE" line per question, so a test can see it was asked.
import dgram from 'node:dgram';
import { isIPv4, isIPv6 } from 'node:net';

const records = new Map();
for (const arg of process.argv.slice(2)) {
  const [name, address] = arg.split('=');
  const key = name.toLowerCase().replace(/\.$/, '');
  records.set(key, [...(records.get(key) ?? []), address]);
}

const ipv6Bytes = (a) => {
  const [head, tail = ''] = a.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = a.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  return Buffer.from(groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 255]));
};

const socket = dgram.createSocket({ type: 'udp6', ipv6Only: false });
socket.on('message', (msg, rinfo) => {
  if (msg.length < 12) return;
  // The question: labels, then type and class.
  let at = 12;
  const labels = [];
  while (at < msg.length && msg[at] !== 0) {
    labels.push(msg.subarray(at + 1, at + 1 + msg[at]).toString('ascii'));
    at += 1 + msg[at];
  }
  at += 1;
  const qtype = msg.readUInt16BE(at);
  const question = msg.subarray(12, at + 4);
  const name = labels.join('.').toLowerCase();
  const known = records.get(name);
  const want = qtype === 1 ? isIPv4 : qtype === 28 ? isIPv6 : () => false;
  const answers = (known ?? []).filter((a) => want(a));
  const header = Buffer.alloc(12);
  msg.copy(header, 0, 0, 2); // id
  header.writeUInt16BE(0x8180 | (msg.readUInt16BE(2) & 0x0100) | (known ? 0 : 3), 2); // response, RD copied, RA; NXDOMAIN when unknown
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers.length, 6);
  const rrs = answers.map((a) => {
    const data = qtype === 1 ? Buffer.from(a.split('.').map(Number)) : ipv6Bytes(a);
    const rr = Buffer.alloc(12);
    rr.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
    rr.writeUInt16BE(qtype, 2);
    rr.writeUInt16BE(1, 4);
    rr.writeUInt32BE(5, 6);
    rr.writeUInt16BE(data.length, 10);
    return Buffer.concat([rr, data]);
  });
  socket.send(Buffer.concat([header, question, ...rrs]), rinfo.port, rinfo.address);
  process.stdout.write(`answered ${name} ${qtype === 1 ? 'A' : qtype === 28 ? 'AAAA' : qtype} from ${rinfo.address}\n`);
});
socket.bind(53, '::', () => process.stdout.write('listening\n'));
process.on('SIGTERM', () => process.exit(0));
