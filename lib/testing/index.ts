/**
 * `nestjs-gearman/testing`: for your own tests. A private job server per test suite
 * (`startTestServer`: the embedded one, or a real gearmand), and a GearmanContext for calling a
 * handler without any server (`createTestContext`). Every name here is public API.
 */
export { startTestServer, type TestServer, type TestServerOptions } from './test-server.js';
export { createTestContext, type TestContext, type TestContextOptions, type TestReports } from './test-context.js';
