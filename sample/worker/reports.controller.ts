import { Controller } from '@nestjs/common';
import { Ctx, MessagePattern, Payload, RpcException } from '@nestjs/microservices';
import { concatMap, from, type Observable, range } from 'rxjs';
import { GearmanContext } from 'nestjs-gearman';

export interface ReportRequest {
  /** A title for the report. */
  name?: string;
  /** How many rows to produce (1 to 100). */
  rows: number;
}

export interface ReportRow {
  report: string;
  row: number;
  value: number;
}

export const MAX_REPORT_ROWS = 100;

/**
 * Streaming: `report.generate` emits one value per row. Every row but the last reaches the caller
 * as WORK_DATA, the last one as WORK_COMPLETE; before each row the handler reports its progress
 * with WORK_STATUS (`ctx.sendStatus(done, total)`).
 */
@Controller()
export class ReportsController {
  @MessagePattern('report.generate')
  generate(@Payload() request: ReportRequest | undefined, @Ctx() ctx: GearmanContext): Observable<ReportRow> {
    const rows = request?.rows;
    if (typeof rows !== 'number' || !Number.isInteger(rows) || rows < 1 || rows > MAX_REPORT_ROWS) {
      throw new RpcException({ code: 'BAD_REQUEST', message: `rows must be an integer from 1 to ${MAX_REPORT_ROWS}` });
    }
    const report = request?.name ?? 'report';
    return range(1, rows).pipe(
      concatMap((row) => {
        ctx.sendStatus(row, rows);
        return from(this.computeRow(report, row));
      }),
    );
  }

  /** Stands in for real work (a query, a file): yields to the event loop once per row. */
  private async computeRow(report: string, row: number): Promise<ReportRow> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    return { report, row, value: row * row };
  }
}
