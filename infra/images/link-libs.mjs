// Makes `require('@lvr/<lib>')` resolve to the compiled library in dist/, as tsconfig `paths` do at compile time:
// one package.json per alias under node_modules/@lvr/ (run in the build stage of node.Containerfile).
import fs from 'node:fs';
import path from 'node:path';

const paths = JSON.parse(fs.readFileSync('tsconfig.json', 'utf8')).compilerOptions.paths;
for (const [alias, [source]] of Object.entries(paths)) {
  const entry = path.join('dist', source, 'index.js');
  if (!fs.existsSync(entry)) continue;
  const dir = path.join('node_modules', alias);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'package.json'),
    JSON.stringify({ name: alias, private: true, main: path.relative(dir, entry) }, null, 2),
  );
}
