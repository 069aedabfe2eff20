'use strict';

// test-support: the one place tests (__test__/), the bench (bench/), the soak
// (scripts/soak.js) and the example start throwaway Redis servers and share
// helpers. Plain CommonJS, not part of the published package. See README.md.

const ports = require('./ports');
const poll = require('./poll');
const resp = require('./resp');
const layout = require('./layout');
const records = require('./records');
const clients = require('./clients');
const redisServer = require('./redis-server');
const redisCluster = require('./redis-cluster');
const redisSentinel = require('./redis-sentinel');
const ioredisStore = require('./ioredis-store');
const nodeRedisStore = require('./node-redis-store');
const tcpProxy = require('./tcp-proxy');
const writeLoad = require('./write-load');

module.exports = {
  // Servers
  startRedis: redisServer.startRedis,
  RedisServer: redisServer.RedisServer,
  generateCerts: redisServer.generateCerts,
  generateCa: redisServer.generateCa,
  startCluster: redisCluster.startCluster,
  RedisCluster: redisCluster.RedisCluster,
  parseClusterNodes: redisCluster.parseClusterNodes,
  parseInfo: redisCluster.parseInfo,
  startSentinels: redisSentinel.startSentinels,
  RedisSentinelSet: redisSentinel.RedisSentinelSet,
  // An endpoint in front of servers
  startProxy: tcpProxy.startProxy,
  TcpProxy: tcpProxy.TcpProxy,
  // Ports and the wire
  LOOPBACK: ports.LOOPBACK,
  FORBIDDEN_PORT: ports.FORBIDDEN_PORT,
  freePort: ports.freePort,
  sendCommands: resp.sendCommands,
  serverPid: resp.serverPid,
  // Waiting
  delay: poll.delay,
  pollUntil: poll.pollUntil,
  // Data
  DEFAULT_TTL_SECONDS: layout.DEFAULT_TTL_SECONDS,
  indexTtlSeconds: layout.indexTtlSeconds,
  conversationKey: layout.conversationKey,
  userIndexKey: layout.userIndexKey,
  parseKey: layout.parseKey,
  conversation: records.conversation,
  isoAtMinute: records.isoAtMinute,
  BASE_TIME_MS: records.BASE_TIME_MS,
  liveSdkObject: records.liveSdkObject,
  seededRandom: records.seededRandom,
  // Load
  startWriteLoad: writeLoad.startWriteLoad,
  missingWrites: writeLoad.missingWrites,
  // Clients
  ioredisClient: clients.ioredisClient,
  captureLogger: clients.captureLogger,
  IoredisConversationStore: ioredisStore.IoredisConversationStore,
  NodeRedisConversationStore: nodeRedisStore.NodeRedisConversationStore,
  nodeRedisClient: clients.nodeRedisClient,
};
