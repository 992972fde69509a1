export * from './packet-types.js';
export * from './errors.js';
export * from './encoder.js';
export * from './decoder.js';
export * from './admin-replies.js';
export * from './messages.js';
