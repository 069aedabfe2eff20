// @redis/entraid's providers are accepted by `credentialsProvider` unchanged
// (the README's Azure section): tsc --noEmit over this file is the test.

import { DefaultAzureCredential } from '@azure/identity';
import { EntraIdCredentialsProviderFactory, REDIS_SCOPE_DEFAULT } from '@redis/entraid';
import type { CredentialsProvider as NodeRedisCredentialsProvider } from '@redis/client/dist/lib/authx/index.js';
import { RedisStore, type CredentialsProvider, type RedisStoreOptions } from 'redis-conversation-store';

const managedIdentity = EntraIdCredentialsProviderFactory.createForSystemAssignedManagedIdentity({
  clientId: 'ignored-for-system-assigned',
  tokenManagerConfig: { expirationRefreshRatio: 0.8 },
});
const defaultCredential = EntraIdCredentialsProviderFactory.createForDefaultAzureCredential({
  credential: new DefaultAzureCredential(),
  scopes: REDIS_SCOPE_DEFAULT,
  tokenManagerConfig: { expirationRefreshRatio: 0.8 },
});

const options: RedisStoreOptions = { url: 'rediss://cache.redis.cache.windows.net:6380', credentialsProvider: managedIdentity };
const store = new RedisStore({ url: 'rediss://h:10000', credentialsProvider: defaultCredential });

// Any provider typed by @redis/client itself is one of ours.
declare const fromNodeRedis: NodeRedisCredentialsProvider;
const ours: CredentialsProvider = fromNodeRedis;

// @ts-expect-error a provider of another type is refused
new RedisStore({ url: 'rediss://h', credentialsProvider: { type: 'token', credentials: async () => ({ password: 'x' }) } });

void [options, store, ours];
