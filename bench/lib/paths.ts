/** Where things are, from the compiled bench (dist/bench/lib/*.js) back to the repository. */
import { fileURLToPath } from 'node:url';
import { join, resolve } from 'node:path';

export const repoRoot = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
export const gatewayMain = join(repoRoot, 'dist', 'src', 'main.js');
export const defaultResultsDir = join(repoRoot, 'bench', 'results');
export const autocannonCli = join(repoRoot, 'node_modules', 'autocannon', 'autocannon.js');
