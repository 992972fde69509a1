/** `nestjs-gearman/health`: the Terminus indicator (needs the optional peer @nestjs/terminus). */
export {
  type GearmanFunctionCheck,
  type GearmanHealthCheck,
  GearmanHealthIndicator,
  type GearmanHealthOptions,
} from './gearman.health-indicator.js';
