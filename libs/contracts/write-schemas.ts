// Regenerates libs/contracts/schema/*.schema.json from the DTOs: `npm run contracts:schema`.
import fs from 'node:fs';
import path from 'node:path';
import { generateSchemas } from './src/schema';

const dir = path.join(__dirname, 'schema');
fs.mkdirSync(dir, { recursive: true });
for (const [name, schema] of Object.entries(generateSchemas())) {
  fs.writeFileSync(path.join(dir, `${name}.schema.json`), `${JSON.stringify(schema, null, 2)}\n`);
}
process.stdout.write(`wrote ${dir}\n`);
