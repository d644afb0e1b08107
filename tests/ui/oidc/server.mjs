// A local OpenID provider for relaygate's SSO tests: node-oidc-provider with one confidential client
// (PKCE required), its built-in login and consent pages (devInteractions: any password is accepted, the
// login is the account id), and claims (email, role, groups) from an in-memory account table.
//
// usage: node server.mjs <port> <redirect_uri> [client_id] [client_secret]
// The accounts come from the OIDC_ACCOUNTS environment variable (JSON: {"<login>": {"email": ..., "role": ...,
// "groups": [...]}}); a login not in it signs in with only a sub and an email. Prints "listening <issuer>" once
// it accepts connections.
import Provider from 'oidc-provider';

const port = Number(process.argv[2] || 0);
const redirectUri = process.argv[3];
const clientId = process.argv[4] || 'relaygate-ui';
const clientSecret = process.argv[5] || 'relaygate-ui-secret-0123456789';
if (!port || !redirectUri) {
  console.error('usage: node server.mjs <port> <redirect_uri> [client_id] [client_secret]');
  process.exit(2);
}
const accounts = JSON.parse(process.env.OIDC_ACCOUNTS || '{}');
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username', 'role', 'groups'],
  },
  cookies: { keys: ['relaygate-test-cookie-key-0123456789'] },
  async findAccount(_ctx, id) {
    const a = accounts[id] || {};
    return {
      accountId: id,
      async claims() {
        const claims = { sub: id, preferred_username: id, email: a.email || `${id}@example.test`, email_verified: true };
        if (a.name) claims.name = a.name;
        if (a.role) claims.role = a.role;
        if (a.groups) claims.groups = a.groups;
        return claims;
      },
    };
  },
});
provider.proxy = false;
provider.on('server_error', (_ctx, err) => console.error('server_error', err));

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
