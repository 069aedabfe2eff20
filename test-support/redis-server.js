'use strict';

// Throwaway redis-server instances for tests and benchmarks.
//
// Every server listens on 127.0.0.1 only, on a port of its own (never 6379),
// with persistence off and its own temporary directory (log file, TLS
// material). Every child process is tracked and SIGKILLed (by pid) when this
// process exits, so a crashing or forgetful test never leaks a server; the
// temporary directories are removed at exit too (best effort).
//
//   const { startRedis } = require('../test-support');
//   const server = await startRedis({ password: 'pw', tls: true });
//   new Redis(server.url, { tls: { ca: server.tls.ca } });
//   await server.stop();

const { spawn, execFile, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { LOOPBACK: HOST, FORBIDDEN_PORT, freePort, reservedPorts } = require('./ports');
const { delay } = require('./poll');
const { serverPid } = require('./resp');

const READY_TIMEOUT_MS = 10_000;
const POLL_INTERVAL_MS = 25;
const STOP_GRACE_MS = 3_000;
const KILL_WAIT_MS = 5_000;
/** How many fresh ports to try when an auto-chosen port turns out to be taken. */
const PORT_ATTEMPTS = 5;
const LOG_TAIL_LINES = 30;

// ---------------------------------------------------------------------------
// Process-wide bookkeeping and cleanup
// ---------------------------------------------------------------------------

/** Live redis-server child processes spawned by this module. */
const children = new Set();
/** Temporary directories created by this module. */
const tmpDirs = new Set();

function killAllChildren() {
  for (const child of children) {
    try {
      process.kill(child.pid, 'SIGKILL'); // SIGKILL also ends a SIGSTOPped process
    } catch {
      // already gone
    }
  }
  children.clear();
}

function removeTmpDirs() {
  for (const dir of tmpDirs) {
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort
    }
  }
  tmpDirs.clear();
}

process.on('exit', () => {
  killAllChildren();
  removeTmpDirs();
});

// A fatal signal skips 'exit'. If nobody else handles the signal, clean up and
// re-raise it so the process still dies the way it would have; if someone
// else does handle it, leave the decision (and the 'exit' cleanup) to them.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  const onSignal = () => {
    if (process.listenerCount(signal) > 1) return;
    killAllChildren();
    removeTmpDirs();
    process.removeListener(signal, onSignal);
    process.kill(process.pid, signal);
  };
  process.on(signal, onSignal);
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

function makeTmpDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpDirs.add(dir);
  return dir;
}

function readLogTail(logPath, fromOffset = 0) {
  try {
    const text = fs.readFileSync(logPath, 'utf8').slice(fromOffset);
    return text.trimEnd().split('\n').slice(-LOG_TAIL_LINES).join('\n');
  } catch {
    return '(no log)';
  }
}

// ---------------------------------------------------------------------------
// TLS material (openssl CLI)
// ---------------------------------------------------------------------------

function openssl(args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * Generates RSA 2048 private keys (PKCS#8 PEM) at the given paths, in
 * parallel: key generation dominates the cost of a TLS server's setup, and
 * this keeps a synchronous API.
 */
function generateRsaKeys(keyPaths) {
  const script = keyPaths
    .map((_, i) => `openssl genrsa -out "$${i + 1}" 2048 2>/dev/null & p${i}=$!`)
    .concat(keyPaths.map((_, i) => `wait $p${i} || exit 1`))
    .join('\n');
  execFileSync('sh', ['-c', script, 'genrsa', ...keyPaths], { stdio: ['ignore', 'ignore', 'pipe'] });
}

function randomSerial() {
  return `0x${crypto.randomBytes(8).toString('hex')}`;
}

/**
 * Creates a fresh self-signed CA (RSA 2048, CN "rcs-test-ca") in `dir`.
 * Each call makes an unrelated CA, so one CA's PEM is a ready-made "wrong CA"
 * for another's certificates.
 * @param {string} [dir] created if missing; a new temporary directory by default
 * @returns {{ dir: string, caPath: string, caKeyPath: string, ca: string }}
 */
function generateCa(dir = makeTmpDir('rcs-ca-')) {
  fs.mkdirSync(dir, { recursive: true });
  generateRsaKeys([path.join(dir, 'ca.key')]);
  return selfSignCa(dir);
}

/** Self-signs `dir`/ca.crt with the existing `dir`/ca.key. */
function selfSignCa(dir) {
  // A config of our own, so the result does not depend on the system openssl.cnf.
  const cnf = path.join(dir, 'ca.cnf');
  fs.writeFileSync(
    cnf,
    [
      '[req]',
      'distinguished_name = dn',
      'prompt = no',
      'x509_extensions = v3_ca',
      '[dn]',
      'CN = rcs-test-ca',
      '[v3_ca]',
      'basicConstraints = critical,CA:TRUE',
      'keyUsage = critical,keyCertSign,cRLSign',
      'subjectKeyIdentifier = hash',
      '',
    ].join('\n'),
  );
  const caPath = path.join(dir, 'ca.crt');
  const caKeyPath = path.join(dir, 'ca.key');
  openssl(
    ['req', '-x509', '-new', '-key', caKeyPath, '-sha256', '-days', '3650',
      '-set_serial', randomSerial(), '-config', cnf, '-out', caPath],
    dir,
  );
  return { dir, caPath, caKeyPath, ca: fs.readFileSync(caPath, 'utf8') };
}

/** Issues a leaf certificate `<name>.crt` for the existing key `<name>.key`, signed by the CA. */
function issueLeaf(ca, name, commonName, extensions) {
  const { dir } = ca;
  const reqCnf = path.join(dir, `${name}.req.cnf`);
  const extCnf = path.join(dir, `${name}.ext.cnf`);
  fs.writeFileSync(
    reqCnf,
    ['[req]', 'distinguished_name = dn', 'prompt = no', '[dn]', `CN = ${commonName}`, ''].join('\n'),
  );
  fs.writeFileSync(
    extCnf,
    [
      '[v3]',
      'basicConstraints = critical,CA:FALSE',
      'keyUsage = critical,digitalSignature,keyEncipherment',
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid,issuer',
      ...extensions,
      '',
    ].join('\n'),
  );
  const keyPath = path.join(dir, `${name}.key`);
  const csrPath = path.join(dir, `${name}.csr`);
  const certPath = path.join(dir, `${name}.crt`);
  openssl(['req', '-new', '-key', keyPath, '-config', reqCnf, '-out', csrPath], dir);
  openssl(['x509', '-req', '-in', csrPath, '-CA', ca.caPath, '-CAkey', ca.caKeyPath,
    '-set_serial', randomSerial(), '-days', '3650', '-sha256',
    '-extfile', extCnf, '-extensions', 'v3', '-out', certPath], dir);
  return {
    certPath,
    keyPath,
    cert: fs.readFileSync(certPath, 'utf8'),
    key: fs.readFileSync(keyPath, 'utf8'),
  };
}

/**
 * Creates a fresh CA plus a server certificate (SAN IP:127.0.0.1,
 * DNS:localhost, DNS:redis.test; serverAuth) and a client certificate
 * (clientAuth), all signed by that CA, in `dir`.
 * @param {string} [dir] created if missing; a new temporary directory by default
 * @returns {{ dir: string, caPath: string, caKeyPath: string, certPath: string,
 *   keyPath: string, clientCertPath: string, clientKeyPath: string,
 *   ca: string, cert: string, key: string, clientCert: string, clientKey: string }}
 */
function generateCerts(dir = makeTmpDir('rcs-tls-')) {
  fs.mkdirSync(dir, { recursive: true });
  generateRsaKeys(['ca.key', 'server.key', 'client.key'].map((f) => path.join(dir, f)));
  const ca = selfSignCa(dir);
  const server = issueLeaf(ca, 'server', 'localhost', [
    'subjectAltName = IP:127.0.0.1,DNS:localhost,DNS:redis.test',
    'extendedKeyUsage = serverAuth',
  ]);
  const client = issueLeaf(ca, 'client', 'rcs-test-client', ['extendedKeyUsage = clientAuth']);
  return {
    dir,
    caPath: ca.caPath,
    caKeyPath: ca.caKeyPath,
    certPath: server.certPath,
    keyPath: server.keyPath,
    clientCertPath: client.certPath,
    clientKeyPath: client.keyPath,
    ca: ca.ca,
    cert: server.cert,
    key: server.key,
    clientCert: client.cert,
    clientKey: client.key,
  };
}

// ---------------------------------------------------------------------------
// The server handle
// ---------------------------------------------------------------------------

class PortBusyError extends Error {
  constructor(port, detail) {
    super(`port ${port} is already in use${detail ? `: ${detail}` : ''}`);
    this.code = 'EADDRINUSE';
  }
}

/** A redis-server child process; create with `startRedis()`. */
class RedisServer {
  /** @private */
  constructor(opts, port, dir, tlsMaterial) {
    this._opts = opts;
    this._port = port;
    this._dir = dir;
    this._tls = tlsMaterial;
    this._child = null;
    this._exited = null; // promise resolving when the current child exits
    this._paused = false;
    this.logPath = path.join(dir, 'redis.log');
    reservedPorts.add(port);
  }

  get host() {
    return HOST;
  }

  get port() {
    return this._port;
  }

  /** The pid of the current child (changes on restart). */
  get pid() {
    return this._child ? this._child.pid : undefined;
  }

  /** null, or the TLS material: { ca, cert, key, clientCert, clientKey, caPath, certPath, keyPath, clientCertPath, clientKeyPath, dir }. */
  get tls() {
    if (!this._tls) return null;
    const t = this._tls;
    return {
      ca: t.ca,
      cert: t.cert,
      key: t.key,
      clientCert: t.clientCert,
      clientKey: t.clientKey,
      caPath: t.caPath,
      certPath: t.certPath,
      keyPath: t.keyPath,
      clientCertPath: t.clientCertPath,
      clientKeyPath: t.clientKeyPath,
      dir: t.dir,
    };
  }

  /** Ready-to-use URL, with the ACL user (or the requirepass password) when set. */
  get url() {
    const scheme = this._tls ? 'rediss' : 'redis';
    const { password, aclUser } = this._opts;
    let auth = '';
    if (aclUser) {
      auth = `${encodeURIComponent(aclUser.name)}:${encodeURIComponent(aclUser.password)}@`;
    } else if (password) {
      auth = `:${encodeURIComponent(password)}@`;
    }
    return `${scheme}://${auth}${HOST}:${this._port}`;
  }

  /** True while the child process runs (also while paused). */
  get alive() {
    const c = this._child;
    // pid is undefined when the spawn itself failed.
    return Boolean(c && c.pid !== undefined && c.exitCode === null && c.signalCode === null);
  }

  /** Credentials for AUTH: the ACL user if any, else the default user's password. */
  _auth() {
    const { password, aclUser } = this._opts;
    if (aclUser) return [aclUser.name, aclUser.password];
    if (password) return [password];
    return null;
  }

  _serverArgs() {
    const { password, aclUser, extraArgs = [], configText } = this._opts;
    const args = [];
    // A config file the server may rewrite (a sentinel records what it learns there).
    if (configText !== undefined) args.push(this._configFile());
    args.push('--save', '', '--appendonly', 'no', '--bind', HOST, '--dir', this._dir);
    if (this._tls) {
      args.push(
        '--port', '0',
        '--tls-port', String(this._port),
        '--tls-cert-file', this._tls.certPath,
        '--tls-key-file', this._tls.keyPath,
        '--tls-ca-cert-file', this._tls.caPath,
        '--tls-auth-clients', this._opts.tls.requireClientCert ? 'yes' : 'no',
      );
    } else {
      args.push('--port', String(this._port));
    }
    if (password) args.push('--requirepass', password);
    if (aclUser) {
      // Becomes the config line `user <name> on ><password> ~* &* +@all`.
      args.push('--user', aclUser.name, 'on', `>${aclUser.password}`, '~*', '&*', '+@all');
    }
    args.push(...extraArgs);
    return args;
  }

  /** Writes `configText` once (a restart keeps what the server rewrote) and returns its path. */
  _configFile() {
    const file = path.join(this._dir, 'redis.conf');
    if (!fs.existsSync(file)) fs.writeFileSync(file, this._opts.configText);
    return file;
  }

  /** redis-cli flags for host, port, TLS and auth. */
  _cliArgs() {
    const args = ['-h', HOST, '-p', String(this._port)];
    if (this._tls) {
      args.push('--tls', '--cacert', this._tls.caPath,
        '--cert', this._tls.clientCertPath, '--key', this._tls.clientKeyPath);
    }
    const { password, aclUser } = this._opts;
    if (aclUser) {
      args.push('--user', aclUser.name, '--pass', aclUser.password, '--no-auth-warning');
    } else if (password) {
      args.push('-a', password, '--no-auth-warning');
    }
    return args;
  }

  /**
   * Spawns one child on this._port and waits until it is ready.
   * Throws PortBusyError if the port is taken, another Error otherwise.
   */
  async _launch() {
    const logFd = fs.openSync(this.logPath, 'a');
    const logOffset = fs.fstatSync(logFd).size;
    let child;
    try {
      child = spawn('redis-server', this._serverArgs(), {
        detached: false,
        stdio: ['ignore', logFd, logFd],
      });
    } finally {
      fs.closeSync(logFd); // the child keeps its own copy
    }
    this._child = child;
    this._paused = false;
    // Don't let a forgotten server keep the test process alive: the 'exit'
    // hook kills it. (Waits below hold ref'd timers, so they still complete.)
    child.unref();
    if (child.pid !== undefined) children.add(child);
    let spawnError = null;
    this._exited = new Promise((resolve) => {
      const done = () => {
        children.delete(child);
        resolve();
      };
      child.once('exit', done);
      child.once('error', (err) => {
        // Spawn failure (e.g. ENOENT): no 'exit' follows.
        spawnError = err;
        done();
      });
    });

    const fail = async (err) => {
      if (this._child === child && this.alive) await this.kill();
      throw err;
    };

    const deadline = Date.now() + READY_TIMEOUT_MS;
    const probeTarget = { port: this._port, tls: this._tls, auth: this._auth() };
    for (;;) {
      if (spawnError) {
        // The code (ENOENT: not installed) lets a caller explain what to do.
        throw Object.assign(new Error(`could not spawn redis-server: ${spawnError.message}`), { code: spawnError.code });
      }
      if (child.exitCode !== null || child.signalCode !== null) {
        const tail = readLogTail(this.logPath, logOffset);
        if (/Address already in use/i.test(tail)) throw new PortBusyError(this._port, tail);
        throw new Error(
          `redis-server on port ${this._port} exited during startup ` +
            `(code ${child.exitCode}, signal ${child.signalCode}); log ${this.logPath}:\n${tail}`,
        );
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        return fail(new Error(
          `redis-server on port ${this._port} not ready after ${READY_TIMEOUT_MS} ms; ` +
            `log ${this.logPath}:\n${readLogTail(this.logPath, logOffset)}`,
        ));
      }
      const pid = await serverPid(probeTarget, Math.min(1000, remaining));
      if (pid === child.pid) return;
      if (pid !== null) {
        // Someone else's server answers on "our" port.
        return fail(new PortBusyError(this._port, `answered by pid ${pid}`));
      }
      // Not up yet: poll again shortly, or as soon as the child exits.
      await Promise.race([delay(POLL_INTERVAL_MS), this._exited]);
    }
  }

  /** Waits up to `ms` for the current child to exit; resolves whether it did. */
  async _waitExit(ms) {
    if (!this._exited) return true;
    let timer;
    const timeout = new Promise((resolve) => {
      timer = setTimeout(() => resolve(false), ms); // ref'd: keeps the loop alive while waiting
    });
    try {
      return await Promise.race([this._exited.then(() => true), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  _signal(signal) {
    try {
      process.kill(this._child.pid, signal);
    } catch (err) {
      if (err.code !== 'ESRCH') throw err;
    }
  }

  /** Graceful shutdown: SIGTERM, wait for exit, SIGKILL after 3 s. */
  async stop() {
    if (!this.alive) return;
    if (this._paused) this.resume(); // a stopped process would not act on SIGTERM
    this._signal('SIGTERM');
    if (await this._waitExit(STOP_GRACE_MS)) return;
    await this.kill();
  }

  /** SIGKILL, then wait for the exit. */
  async kill() {
    if (!this.alive) return;
    this._signal('SIGKILL');
    if (!(await this._waitExit(KILL_WAIT_MS))) {
      throw new Error(`redis-server pid ${this.pid} did not exit after SIGKILL`);
    }
    this._paused = false;
  }

  /** SIGSTOP: the server keeps its connections but answers nothing (a hung server). */
  pause() {
    if (!this.alive) throw new Error('redis-server is not running');
    this._signal('SIGSTOP');
    this._paused = true;
  }

  /** SIGCONT: undoes pause(). */
  resume() {
    if (!this.alive) throw new Error('redis-server is not running');
    this._signal('SIGCONT');
    this._paused = false;
  }

  /**
   * Kills the server if it runs, then starts it again on the same port with
   * the same options (and the same TLS material), and waits until it is ready.
   * Retries while the port is briefly busy.
   */
  async restart() {
    await this.kill();
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      try {
        return await this._launch();
      } catch (err) {
        if (err.code !== 'EADDRINUSE' || Date.now() >= deadline) throw err;
        await delay(100);
      }
    }
  }

  /**
   * Runs redis-cli against this server (with its TLS and auth flags) and
   * resolves its trimmed stdout. Rejects if redis-cli exits non-zero or takes
   * longer than 10 s.
   * @param {...string} args e.g. cli('TTL', 'conv:1')
   */
  cli(...args) {
    return new Promise((resolve, reject) => {
      execFile('redis-cli', [...this._cliArgs(), ...args.map(String)], { timeout: 10_000 },
        (err, stdout, stderr) => {
          if (err) {
            err.message += `\n${stderr}`;
            reject(err);
          } else {
            resolve(stdout.trim());
          }
        });
    });
  }
}

/**
 * Starts a redis-server on 127.0.0.1 and resolves once it answers.
 * @param {object} [opts]
 * @param {string} [opts.password] requirepass for the default user
 * @param {{ name: string, password: string }} [opts.aclUser] an ACL user with `~* &* +@all`;
 *   the handle's url and cli() authenticate as this user
 * @param {boolean | { requireClientCert?: boolean }} [opts.tls] serve TLS only (fresh CA per server)
 * @param {object} [opts.certs] with `tls`: TLS material from `generateCerts()` to use instead of a
 *   fresh CA per server (e.g. one CA shared by every node of a cluster)
 * @param {number} [opts.port] default: a free port
 * @param {string[]} [opts.extraArgs] more redis-server arguments, appended last
 * @param {string} [opts.configText] contents of a config file passed first (e.g. a sentinel's)
 * @returns {Promise<RedisServer>}
 */
async function startRedis(opts = {}) {
  const options = { ...opts };
  if (options.tls === true) options.tls = { requireClientCert: false };
  if (!options.tls) options.tls = false;
  if (options.port === FORBIDDEN_PORT) throw new Error('refusing to start a test server on port 6379');

  const dir = makeTmpDir('rcs-redis-');
  const tlsMaterial = options.tls ? (options.certs ?? generateCerts(path.join(dir, 'tls'))) : null;

  for (let attempt = 1; ; attempt++) {
    const port = options.port ?? (await freePort());
    const server = new RedisServer(options, port, dir, tlsMaterial);
    try {
      await server._launch();
      return server;
    } catch (err) {
      reservedPorts.delete(port);
      // An auto-chosen port can be grabbed between freePort() and the bind: try another.
      if (err.code !== 'EADDRINUSE' || options.port !== undefined || attempt >= PORT_ATTEMPTS) throw err;
    }
  }
}

module.exports = { startRedis, generateCerts, generateCa, RedisServer };
