// The shared harness (harness/arr.ts): tests import it from here, bench/ from harness/.
export * from '../../harness/arr.js';
