/** `nestjs-gearman/health`: the Terminus indicator (needs the optional peer @nestjs/terminus). */
export * from './gearman.health-indicator.js';
