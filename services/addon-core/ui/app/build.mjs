// Builds the console into ../dist (committed; compiled into the binary). Deterministic: the
// same sources give the same bytes, so CI can tell when dist/ is stale.
import { build } from 'esbuild';

const common = { bundle: true, minify: true, legalComments: 'none', logLevel: 'warning' };
const script = {
  ...common,
  format: 'iife',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
};
// The console (API Studio, Universal Webhook) and the reference add-on's settings page.
await build({ ...script, entryPoints: ['src/main.tsx'], outfile: '../dist/app.js' });
await build({ ...script, entryPoints: ['src/settings.tsx'], outfile: '../dist/settings.js' });
await build({ ...common, entryPoints: ['src/app.css'], outfile: '../dist/app.css' });
