/**
 * The TF.js versions the speed-ups were verified on. They reach into private state (the engine's
 * tape and clone, AdamOptimizer's fields, the wasm backend's heap and kernel functions), which any
 * release may change: on another version they stay off and stock TF.js runs.
 */
import * as tf from '@tensorflow/tfjs';
import { version_wasm } from '@tensorflow/tfjs-backend-wasm';

export const VERIFIED_VERSIONS = { '@tensorflow/tfjs-core': '4.22.0', '@tensorflow/tfjs-backend-wasm': '4.22.0' } as const;

export type TfjsPackage = keyof typeof VERIFIED_VERSIONS;
export type InstalledVersions = Readonly<Record<TfjsPackage, string>>;

export function installedVersions(): InstalledVersions {
  return { '@tensorflow/tfjs-core': tf.version_core, '@tensorflow/tfjs-backend-wasm': version_wasm };
}

/** What differs from the verified versions, in a few words; undefined if nothing does. */
export function versionMismatch(installed: InstalledVersions): string | undefined {
  const differ = (Object.keys(VERIFIED_VERSIONS) as TfjsPackage[]).filter((pkg) => installed[pkg] !== VERIFIED_VERSIONS[pkg]);
  if (differ.length === 0) return undefined;
  return differ.map((pkg) => `${pkg} is ${installed[pkg]}, verified on ${VERIFIED_VERSIONS[pkg]}`).join('; ');
}
