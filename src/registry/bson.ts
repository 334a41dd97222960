import { createRequire } from 'node:module';

/**
 * bson's CommonJS build: the very module the mongodb driver loads, so that an ObjectId parsed
 * from an apps file is the driver's class (instanceof holds both ways), without loading the
 * driver itself (file mode does not need it). bson's ES module build would be a second,
 * different ObjectId class.
 */
const bson = createRequire(import.meta.url)('bson') as typeof import('bson');

export const { EJSON, ObjectId } = bson;
export type ObjectId = import('bson').ObjectId;
