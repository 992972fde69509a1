export * from './gearman-admin.service.js';
export * from './gearman-admin.module.js';
