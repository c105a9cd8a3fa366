// A real OpenID Connect provider on 127.0.0.1 for tolu's single sign-on tests.
//
//   node ci/oidc-provider/provider.mjs CONFIG.json
//
// CONFIG: {issuer, port, jwks: {keys: [private JWKs, the first signs]}, clients: [...],
//          accounts: {id: {claims}}, idTokenTtl: seconds}
// Device flow (RFC 8628) is on; sign-in uses oidc-provider's development
// interactions (any account id, no password), which is what a test needs and
// nothing else should use. Prints "ready ISSUER" once it listens.
import fs from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const accounts = config.accounts || {};

const provider = new Provider(config.issuer, {
  clients: config.clients,
  jwks: config.jwks,
  features: {
    deviceFlow: { enabled: true },
    devInteractions: { enabled: true },
    revocation: { enabled: true },
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username', 'name'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
  // Put the claims of the granted scopes into the ID token: tolu reads them there.
  conformIdTokenClaims: false,
  ttl: {
    IdToken: config.idTokenTtl || 3600,
    AccessToken: 3600,
    DeviceCode: 600,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
  },
  cookies: { keys: ['tolu-test-only-cookie-key'] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, ...(accounts[id] || {}) };
      },
    };
  },
});

const server = provider.listen(config.port, '127.0.0.1', () => {
  console.log(`ready ${config.issuer}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
