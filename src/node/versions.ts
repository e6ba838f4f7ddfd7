/** Versions recorded in every saved model, so a result can be traced to the code that made it. */
import * as tf from '@tensorflow/tfjs';
const pkg = require('../../package.json') as { version: string };

export const VERSIONS: Readonly<Record<string, string>> = {
  'lstm-lyrics': pkg.version,
  ...(tf.version as Record<string, string>),
  node: process.versions.node,
};
