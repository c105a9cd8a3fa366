/// <reference types="vitest/config" />
// Builds the web interface into the Python package (runner/server/web/ui), where the
// server serves it at /ui/. The output is committed and must be reproducible: ci/test
// builds again into a scratch folder (--outDir) and compares (no source maps, no
// timestamps; file names carry content hashes).
import { fileURLToPath } from 'node:url'
import vue from '@vitejs/plugin-vue'
import { defineConfig } from 'vite'
import vuetify from 'vite-plugin-vuetify'

const server = process.env.TOLU_UI_DEV_SERVER ?? 'http://127.0.0.1:8000'
const api = ['/users', '/sites', '/apps', '/jobs', '/events', '/transfers', '/batch-jobs', '/sessions', '/stats', '/health']

export default defineConfig({
  base: '/ui/',
  plugins: [vue(), vuetify({ autoImport: true })],
  resolve: { alias: { '@': fileURLToPath(new URL('./src', import.meta.url)) } },
  build: {
    outDir: fileURLToPath(new URL('../runner/server/web/ui', import.meta.url)),
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 1200,
  },
  // `npm run dev`: hot reload against a running `tolu server up` (the event stream included)
  server: {
    proxy: Object.fromEntries(api.map((p) => [p, { target: server, ws: p === '/events' }])),
  },
  test: {
    environment: 'jsdom',
    include: ['tests/**/*.spec.ts'],
    server: { deps: { inline: ['vuetify'] } },
  },
})
