/** The page's bundle entry (scripts/build-web.js bundles it into app.js). */
import * as tf from '@tensorflow/tfjs';
import { start } from './ui';

// TF.js as `tf` in the browser's console, as a page that loads it from a <script> tag has it:
// learners inspect `tf.memory()` or the backend there, and the page's tests check that
// tf.memory().numTensors stays flat.
(globalThis as { tf?: typeof tf }).tf = tf;

void start();
