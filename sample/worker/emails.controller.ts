import { Controller } from '@nestjs/common';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import { GearmanContext } from 'nestjs-gearman';
import { type EmailMessage, EmailOutbox } from './email-outbox.service.js';

/**
 * Background job: `email.send` is submitted with `emit()` (SUBMIT_JOB_BG); the caller gets the
 * job handle at once and the worker runs it whenever it can. A failing event handler ends the job
 * with WORK_FAIL (and a log line), so `gearadmin --status` never shows it stuck as running.
 */
@Controller()
export class EmailsController {
  constructor(private readonly outbox: EmailOutbox) {}

  // `<string>` keeps strict TypeScript happy with a typed @Ctx() parameter (TS1241 otherwise).
  @EventPattern<string>('email.send')
  send(@Payload() email: EmailMessage, @Ctx() ctx: GearmanContext): void {
    if (typeof email?.to !== 'string' || typeof email.subject !== 'string') {
      throw new Error(`email.send needs { to, subject }; job ${ctx.getHandle()} is dropped`);
    }
    this.outbox.record({
      to: email.to,
      subject: email.subject,
      body: email.body,
      handle: ctx.getHandle(),
      server: ctx.getServer(),
      sentAt: new Date().toISOString(),
    });
  }
}
