/** The page's bundle entry (scripts/build-web.js bundles it into app.js). */
import { start } from './ui';

void start();
