// The peer scripts/compare-peer measures revokd against: node
// oidc-provider (the version pinned in package.json) issuing JWT access
// tokens (RFC 9068) for client_credentials, signed with the algorithm named
// on the command line, the same grant, client authentication and token
// shape revokd issues.
//
//   node provider.mjs PORT ALG CLIENT_ID CLIENT_SECRET
//
// ALG is EdDSA, ES256 or RS256. The signing key is generated at start-up
// (RSA 2048 bits, P-256, Ed25519), like revokd's keys in the comparison.
// Listens on 127.0.0.1 only.
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const [port, alg, clientId, clientSecret] = process.argv.slice(2);
const ALGS = { EdDSA: ['ed25519', {}], ES256: ['ec', { namedCurve: 'P-256' }], RS256: ['rsa', { modulusLength: 2048 }] };
if (!port || !ALGS[alg] || !clientId || !clientSecret) {
  console.error('usage: node provider.mjs PORT EdDSA|ES256|RS256 CLIENT_ID CLIENT_SECRET');
  process.exit(2);
}

// oidc-provider wants an RS256 key in its set whatever else it signs with
// (ID tokens default to RS256); the resource server below picks `alg`.
const keys = new Set(['RS256', alg]);
const jwks = {
  keys: [...keys].map((a) => {
    const [type, options] = ALGS[a];
    const jwk = generateKeyPairSync(type, options).privateKey.export({ format: 'jwk' });
    return { ...jwk, alg: a, use: 'sig', kid: `compare-${a}` };
  }),
};

const issuer = `http://127.0.0.1:${port}`;
const resource = 'https://api.example.test';
const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'read',
  }],
  jwks,
  scopes: ['read'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // Every token is for the one API, as revokd's bench client's are.
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'read',
        audience: 'api',
        accessTokenTTL: 3600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg } },
      }),
    },
  },
  enabledJWA: {
    idTokenSigningAlgValues: [...keys],
  },
});
provider.proxy = false;
provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`oidc-provider ${alg} listening on ${issuer}`);
});
