// Per-start credentials of the test cluster: a random admin bearer token (static token file, group system:masters),
// the service-account signing key pair, and the kubeconfig every component and test uses. All files mode 0600 in the
// state dir; nothing secret is committed.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export function credentialPaths(dir) {
  return {
    tokenFile: path.join(dir, 'tokens.csv'),
    serviceAccountKey: path.join(dir, 'sa.key'),
    serviceAccountPub: path.join(dir, 'sa.pub'),
    certDir: path.join(dir, 'certs'),
    // kube-apiserver writes its self-signed serving certificate (leaf + its CA) here on first start.
    caFile: path.join(dir, 'certs', 'apiserver.crt'),
    kubeconfig: path.join(dir, 'kubeconfig'),
  };
}

export function writeCredentials(dir, server) {
  const files = credentialPaths(dir);
  const token = randomBytes(24).toString('hex');
  write(files.tokenFile, `${token},lvr-admin,lvr-admin,"system:masters"\n`);
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  write(files.serviceAccountKey, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  write(files.serviceAccountPub, publicKey.export({ type: 'spki', format: 'pem' }));
  write(files.kubeconfig, kubeconfigYaml(server, files.caFile, token));
  return { ...files, token };
}

export function readToken(dir) {
  try {
    return fs.readFileSync(credentialPaths(dir).tokenFile, 'utf8').split(',')[0];
  } catch {
    return undefined;
  }
}

function kubeconfigYaml(server, caFile, token) {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '  - name: lvr-test',
    '    cluster:',
    `      server: ${server}`,
    `      certificate-authority: ${caFile}`,
    'users:',
    '  - name: lvr-admin',
    '    user:',
    `      token: ${token}`,
    'contexts:',
    '  - name: lvr-test',
    '    context:',
    '      cluster: lvr-test',
    '      user: lvr-admin',
    '      namespace: default',
    'current-context: lvr-test',
    '',
  ].join('\n');
}

function write(file, content) {
  fs.writeFileSync(file, content, { mode: 0o600 });
}
