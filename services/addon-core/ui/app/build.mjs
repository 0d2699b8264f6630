// Builds the console into ../dist (committed; compiled into the binary). Deterministic: the
// same sources give the same bytes, so CI can tell when dist/ is stale.
import { build } from 'esbuild';

const common = { bundle: true, minify: true, legalComments: 'none', logLevel: 'warning' };
await build({
  ...common,
  entryPoints: ['src/main.tsx'],
  outfile: '../dist/app.js',
  format: 'iife',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
});
await build({ ...common, entryPoints: ['src/app.css'], outfile: '../dist/app.css' });
