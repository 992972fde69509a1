/** Jest setup file of the `embedded` project (jest.config.js): the server test/support/gearmand.ts starts. */
process.env.GEARMAN_TEST_SERVER = 'embedded';
