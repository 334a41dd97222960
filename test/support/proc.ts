// The shared harness (harness/proc.ts): tests import it from here, bench/ from harness/.
export * from '../../harness/proc.js';
