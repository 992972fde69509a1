export * from './constants.js';
export * from './codecs.js';
export * from './interfaces.js';
export * from './gearman.context.js';
export * from './gearman.record-builder.js';
export * from './server-gearman.js';
export * from './client-gearman.js';
export * from './gearman.module.js';
