export * from './protocol/index.js';
export * from './engine/index.js';
export * from './nest/index.js';
