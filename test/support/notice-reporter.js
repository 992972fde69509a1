/** Repeats jest.config.js's notice (which suites did not run, and why) at the end of the run. */
export default class NoticeReporter {
  constructor(_globalConfig, options) {
    this.notice = options.notice;
  }

  onRunComplete() {
    process.stderr.write(`\n[nestjs-gearman tests] ${this.notice}\n`);
  }
}
