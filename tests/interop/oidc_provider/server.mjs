// A real OAuth 2.0 / OIDC server that nobody in this project wrote (panva/node-oidc-provider),
// configured for the client-credentials grant with RFC 9068 JWT access tokens. The m2mgate test
// suite starts it on loopback: `node server.mjs PORT`. It prints one JSON line when ready.
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
const issuer = `http://127.0.0.1:${port}`;
const audience = 'https://api.example';

// A fresh signing key per run: nothing is committed, nothing expires one day.
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'ES256', kid: `interop-${Date.now()}` };

const client = (id, scope) => ({
  client_id: id,
  client_secret: `${id}-secret`,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  scope,
});

const provider = new Provider(issuer, {
  clients: [client('reader', 'read:data'), client('admin', 'read:data admin')],
  scopes: ['read:data', 'admin'],
  jwks: { keys: [signingKey] },
  // The only key is an ES256 key, so every default that names an algorithm must say ES256.
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => {
        if (resource !== audience) throw new Provider.errors.InvalidTarget();
        return {
          scope: 'read:data admin',
          audience,
          accessTokenTTL: 300,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
});

const server = provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ event: 'ready', issuer })}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
