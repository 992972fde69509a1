import { Injectable, Logger } from '@nestjs/common';

export interface EmailMessage {
  to: string;
  subject: string;
  body?: string;
}

export interface SentEmail extends EmailMessage {
  /** The Gearman job handle that carried it. */
  handle: string;
  /** The gearmand (`host:port`) that assigned the job. */
  server: string;
  sentAt: string;
}

/** Where the sample "sends" email: it records each message (a real app would call an SMTP API). */
@Injectable()
export class EmailOutbox {
  private readonly logger = new Logger(EmailOutbox.name);
  private readonly messages: SentEmail[] = [];

  record(email: SentEmail): void {
    this.messages.push(email);
    this.logger.log(`sent "${email.subject}" to ${email.to} (job ${email.handle} from ${email.server})`);
  }

  /** Every message sent so far, oldest first. */
  get sent(): readonly SentEmail[] {
    return this.messages;
  }
}
