import { Module } from '@nestjs/common';

/** Placeholder: the sample worker and HTTP gateway come with the sample issue. */
@Module({})
export class AppModule {}
