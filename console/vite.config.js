// Builds the console into the Python package, so `pip install` ships it (no CDN, no Node at
// run time). The gateway serves it under /console/ with a strict CSP, so nothing may be
// inlined: no data: URIs for assets and no inline module-preload polyfill.
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/console/',
  build: {
    outDir: '../gateway/console/static',
    emptyOutDir: true,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    target: 'es2022',
    sourcemap: false,
    reportCompressedSize: false,
  },
});
