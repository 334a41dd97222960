// What the page keeps between the overview, the live ticks and an app's details.

export const PAGE_SIZE = 50;
/** Ticks kept per app for the rows' sparklines, and for the node's chart. */
export const SPARK_POINTS = 60;
export const NODE_POINTS = 180;
/** The list is read again at least this often (uptimes, remote instances), and when an instance changes. */
export const OVERVIEW_EVERY_MS = 5000;
export const DETAIL_EVERY_MS = 2000;

export const state = {
  offset: 0,
  q: '',
  sort: 'name',
  version: -1,
  overviewAt: 0,
  loading: false,
  again: false,
  /** The app whose details are open (id). */
  selected: null,
  /** Apps of the page shown, by id, with their row's cells. */
  rows: new Map(),
  /** Requests per second per app, from the ticks. */
  history: new Map(),
  nodeHistory: [],
  /** The registry's kind: file or mongo. */
  kind: null,
};
