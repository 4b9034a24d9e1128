// Builds the GUI into the Python package (src/evento/server/gui_dist), where the server serves it and the wheel
// carries it. `npm run dev` proxies the API to a server on localhost:3000 (`evento demo`).
import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

const outDir = fileURLToPath(new URL("../src/evento/server/gui_dist", import.meta.url));
const server = process.env.EVENTO_SERVER ?? "http://127.0.0.1:3000";

export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir,
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    chunkSizeWarningLimit: 700,
  },
  server: {
    proxy: { "/api": server, "/metrics": server },
  },
});
