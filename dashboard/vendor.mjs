// Copy the browser builds of the dependencies into vendor/, which is committed, so the
// page works without internet access. Run: npm ci && npm run vendor
import { copyFileSync, mkdirSync } from "node:fs";

const files = [
  ["node_modules/mqtt/dist/mqtt.min.js", "vendor/mqtt.min.js"],
  ["node_modules/uplot/dist/uPlot.iife.min.js", "vendor/uPlot.iife.min.js"],
  ["node_modules/uplot/dist/uPlot.min.css", "vendor/uPlot.min.css"],
];
mkdirSync("vendor", { recursive: true });
for (const [from, to] of files) {
  copyFileSync(from, to);
  console.log(`${from} -> ${to}`);
}
