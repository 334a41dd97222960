// The shared harness (harness/mongo.ts): tests import it from here, bench/ from harness/.
export * from '../../harness/mongo.js';
