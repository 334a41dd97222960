import { readFile, stat } from 'node:fs/promises';
import { replaceFile } from '../util/replace-file.js';
import { parseAppsText } from './apps-file.js';
import { setRevision } from './apps-file-edit.js';
import { FileRegistry } from './file-registry.js';
import { buildRouteTable } from './load.js';
import { MongoRegistry } from './mongo-registry.js';
import type { Registry } from './registry.js';
import type { App } from './types.js';

/** The slots of an app with what they run, where the registry keeps them (MongoDB). */
export type SlotNotes = Awaited<ReturnType<MongoRegistry['slotNotes']>>;

/**
 * Revisions and deploys, whichever registry it is (`arr restart`, `arr apps`): a revision is
 * asked for in the registry itself (MongoDB's document, the apps file's line), and what became
 * of a deploy is read from the slots where the registry keeps them (MongoDB); for an apps file,
 * from the state files of the arrs serving it.
 */
export type Revisions = RevisionBump &
  (
    | { where: 'slots'; slotNotes(appId: string): Promise<SlotNotes> }
    | { where: 'state files'; appsFile: string }
  );

interface RevisionBump {
  /** Asks for the app's next revision: the new revision, or why not (a sentence). */
  bump(app: App): Promise<number | string>;
}

export function revisionsOf(registry: Registry): Revisions {
  if (registry instanceof MongoRegistry)
    return {
      where: 'slots',
      bump: (app) => registry.bumpRevision(app.id),
      slotNotes: (id) => registry.slotNotes(id),
    };
  if (registry instanceof FileRegistry)
    return {
      where: 'state files',
      bump: (app) => bumpRevisionInFile(registry.path, app),
      appsFile: registry.path,
    };
  throw new Error(`no revisions for a registry of kind ${registry.kind}`);
}

/** The apps file with the app's revision one more, written atomically; the new revision, or why not. */
async function bumpRevisionInFile(file: string, app: App): Promise<number | string> {
  const text = await readFile(file, 'utf8');
  const { table, lines } = buildRouteTable(parseAppsText(text).docs);
  const line = lines.get(app.id)?.[0];
  if (!table.apps.has(app.id) || line === undefined) return `${file} changed meanwhile; try again`;
  const revision = (table.apps.get(app.id)?.revision ?? 0) + 1;
  const edited = setRevision(text, line, revision);
  if (edited === undefined) return `cannot find the document of ${app.name} in ${file}`;
  const mode = (await stat(file)).mode & 0o7777;
  await replaceFile(file, edited, { mode, durable: true });
  return revision;
}
