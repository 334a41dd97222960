// The shared harness (harness/ports.ts): tests import it from here, bench/ from harness/.
export * from '../../harness/ports.js';
