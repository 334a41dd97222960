// The shared harness (harness/poll.ts): tests import it from here, bench/ from harness/.
export * from '../../harness/poll.js';
