// A real OpenID provider (panva/oidc-provider) on loopback, for matgate's identity tests.
//
// Configured by one JSON object in the OIDC_TEST_CONFIG environment variable:
//   { "port": 4000, "audience": "http://node", "jwks": { "keys": [private JWKs] },
//     "clients": [ { "client_id": "alice", "client_secret": "...", "alg": "RS256",
//                    "ttl": 600, "claims": { "realm_access": { "roles": ["member"] } } } ],
//     "claims_supported": ["realm_access"] }
// Clients use the client-credentials grant with a resource indicator (RFC 8707) and receive
// RFC 9068 JWT access tokens (typ at+jwt) whose sub is their client_id, signed with their alg.
// GET /_hits answers how often the provider served its discovery document and its JWKS.
import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(process.env.OIDC_TEST_CONFIG);
const issuer = `http://127.0.0.1:${config.port}`;
const byClient = new Map(config.clients.map((c) => [c.client_id, c]));
const hits = { discovery: 0, jwks: 0 };

const provider = new Provider(issuer, {
  clients: config.clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_post',
  })),
  jwks: config.jwks,
  claims: { openid: ['sub'], matgate: config.claims_supported || [] },
  scopes: ['openid', 'member', 'steward', 'auditor'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => config.audience,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource, client) => {
        if (resource !== config.audience) throw new errors.InvalidTarget();
        const spec = byClient.get(client.clientId);
        return {
          scope: 'member steward auditor',
          audience: resource,
          accessTokenTTL: spec.ttl || 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: spec.alg || 'RS256' } },
        };
      },
    },
  },
  extraTokenClaims: (ctx, token) => (byClient.get(token.clientId) || {}).claims || {},
});

provider.use(async (ctx, next) => {
  if (ctx.path === '/_hits') {
    ctx.body = hits;
    return;
  }
  if (ctx.path === '/.well-known/openid-configuration') hits.discovery += 1;
  if (ctx.path === '/jwks') hits.jwks += 1;
  await next();
});

const server = provider.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
