'use strict';

// A minimal one-shot RESP client: one fresh connection, a pipeline of
// commands, their replies, close. No reconnects and no client library, so a
// harness can ask a server something (is it up, is it ours, what does CLUSTER
// NODES say) without depending on the code under test.

const net = require('node:net');
const tlsModule = require('node:tls');

const { LOOPBACK } = require('./ports');

const COMMAND_TIMEOUT_MS = 2_000;

/**
 * Encodes one command (an array of arguments) as a RESP array of bulk
 * strings. A Buffer argument is sent as its bytes (not UTF-8 text, say).
 */
function encodeCommand(args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = Buffer.isBuffer(arg) ? arg : Buffer.from(String(arg));
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/**
 * Parses one RESP2 reply from `buf` at `offset`; returns { value, offset } or
 * null when the reply is incomplete. Error replies become Error values.
 */
function parseReply(buf, offset) {
  if (offset >= buf.length) return null;
  const lineEnd = buf.indexOf('\r\n', offset);
  if (lineEnd === -1) return null;
  const type = String.fromCharCode(buf[offset]);
  const line = buf.toString('utf8', offset + 1, lineEnd);
  const next = lineEnd + 2;
  switch (type) {
    case '+':
      return { value: line, offset: next };
    case '-':
      return { value: Object.assign(new Error(line), { redisError: true }), offset: next };
    case ':':
      return { value: Number(line), offset: next };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, offset: next };
      if (buf.length < next + len + 2) return null;
      return { value: buf.toString('utf8', next, next + len), offset: next + len + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { value: null, offset: next };
      const items = [];
      let at = next;
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, at);
        if (!item) return null;
        items.push(item.value);
        at = item.offset;
      }
      return { value: items, offset: at };
    }
    default:
      throw new Error(`unexpected RESP type byte ${JSON.stringify(type)}`);
  }
}

/**
 * Sends `commands` (arrays of arguments) pipelined over one fresh connection
 * to 127.0.0.1:`port` and resolves their replies (error replies as Error
 * values, not rejections). Rejects on connection failure, a failed AUTH, or
 * after `timeoutMs`.
 * @param {{ port: number, tls?: { ca: string, clientCert?: string, clientKey?: string } | null,
 *   auth?: string[] | null }} target `auth`: the AUTH arguments ([password] or [user, password])
 * @param {Array<Array<string|number|Buffer>>} commands
 * @param {number} [timeoutMs]
 */
function sendCommands({ port, tls, auth }, commands, timeoutMs = COMMAND_TIMEOUT_MS) {
  return new Promise((resolve, reject) => {
    const all = auth ? [['AUTH', ...auth], ...commands] : commands;
    let buf = Buffer.alloc(0);
    let offset = 0;
    const replies = [];
    let settled = false;
    const sock = tls
      ? tlsModule.connect({ host: LOOPBACK, port, ca: tls.ca, cert: tls.clientCert, key: tls.clientKey })
      : net.connect({ host: LOOPBACK, port });
    const timer = setTimeout(() => finish(new Error(`no reply from ${LOOPBACK}:${port} within ${timeoutMs} ms`)), timeoutMs);
    function finish(err, value) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(value);
    }
    sock.once(tls ? 'secureConnect' : 'connect', () => sock.write(Buffer.concat(all.map(encodeCommand))));
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      try {
        for (;;) {
          const reply = parseReply(buf, offset);
          if (!reply) break;
          replies.push(reply.value);
          offset = reply.offset;
        }
      } catch (err) {
        return finish(err);
      }
      // A failed AUTH: the server may close before answering the rest.
      if (auth && replies[0] instanceof Error) {
        return finish(new Error(`AUTH on ${LOOPBACK}:${port} failed: ${replies[0].message}`));
      }
      if (replies.length === all.length) finish(null, auth ? replies.slice(1) : replies);
    });
    sock.on('error', (err) => finish(err));
    sock.on('close', () => finish(new Error(`connection to ${LOOPBACK}:${port} closed before all replies`)));
  });
}

/**
 * The readiness probe: asks the server on `target.port` for INFO server and
 * resolves the `process_id` it reports, or null on any failure (refused,
 * error reply such as LOADING or NOAUTH, timeout). Checking the pid, not just
 * a PONG, proves the answer comes from the process the caller started and not
 * from some other server that grabbed the port.
 * @param {{ port: number, tls?: object | null, auth?: string[] | null }} target as for sendCommands
 * @param {number} timeoutMs
 * @returns {Promise<number | null>}
 */
async function serverPid(target, timeoutMs) {
  try {
    const [info] = await sendCommands(target, [['INFO', 'server']], timeoutMs);
    const match = typeof info === 'string' ? /process_id:(\d+)\r\n/.exec(info) : null;
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

module.exports = { encodeCommand, parseReply, sendCommands, serverPid };
