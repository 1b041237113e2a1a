import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const repo = fileURLToPath(new URL('../..', import.meta.url));

/**
 * The service as the image runs it (`node dist/src/main.js`: JavaScript, no TypeScript
 * loader, which alone holds some 40 MiB), for tests that measure its memory. Each file of
 * src/ is transpiled on its own (no type check: `npm test` does that), laid out as
 * `npm run build` lays it out, next to a copy of drizzle/ and a link to node_modules.
 * Returns the path of main.js.
 */
export function buildService(): string {
  const out = mkdtempSync(join(tmpdir(), 'docrelay-built-'));
  // ESM whatever the file (NodeNext would need package.json to tell, which transpileModule does not read).
  const { options } = ts.convertCompilerOptionsFromJson(JSON.parse(readFileSync(join(repo, 'tsconfig.json'), 'utf8')).compilerOptions, repo);
  for (const file of sources(join(repo, 'src'))) {
    const js = ts.transpileModule(readFileSync(file, 'utf8'), { compilerOptions: { ...options, module: ts.ModuleKind.ESNext, sourceMap: false }, fileName: file }).outputText;
    const target = join(out, 'dist', relative(repo, file).replace(/\.tsx?$/, '.js'));
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, js);
  }
  cpSync(join(repo, 'drizzle'), join(out, 'dist', 'drizzle'), { recursive: true });
  cpSync(join(repo, 'package.json'), join(out, 'package.json'));
  symlinkSync(join(repo, 'node_modules'), join(out, 'node_modules'));
  return join(out, 'dist', 'src', 'main.js');
}

function* sources(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) yield* sources(join(dir, e.name));
    else if (/\.tsx?$/.test(e.name) && !e.name.endsWith('.d.ts')) yield join(dir, e.name);
  }
}
