/** Jest setup file of the `gearmand` project (jest.config.js): the server test/support/gearmand.ts starts. */
process.env.GEARMAN_TEST_SERVER = 'gearmand';
