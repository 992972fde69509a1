import { Controller, Get, ServiceUnavailableException } from '@nestjs/common';
import { type FunctionStatus, GearmanAdminService } from 'nestjs-gearman';

export interface AdminStatus {
  /** Each gearmand and whether it answered. */
  servers: Array<{ server: string; up: boolean; error?: string }>;
  /** Queues summed over the servers that answered: jobs queued plus running, running, workers. */
  functions: FunctionStatus[];
  /** Worker connections (those that registered functions), per server. */
  workers: Array<{ server: string; clientId: string | undefined; ip: string; functions: string[] }>;
}

/** GET /admin/status: gearmand's `status` and `workers` across every server. */
@Controller('admin')
export class AdminController {
  constructor(private readonly admin: GearmanAdminService) {}

  @Get('status')
  async status(): Promise<AdminStatus> {
    // Asked at once (pipelined on each server's admin connection): a stuck server costs one command timeout.
    const [byServer, functions, connections] = await Promise.all([
      this.admin.statusByServer(),
      this.admin.status().catch((): FunctionStatus[] => []),
      this.admin.workers().catch(() => []),
    ]);
    const servers = byServer.map((r) =>
      r.ok ? { server: r.server, up: true } : { server: r.server, up: false, error: r.error.message },
    );
    if (!servers.some((s) => s.up))
      throw new ServiceUnavailableException({ message: 'no gearmand server answers', servers });
    const workers = connections
      .filter((c) => c.functions.length > 0)
      .map((c) => ({ server: c.server, clientId: c.clientId, ip: c.ip, functions: c.functions }));
    return { servers, functions, workers };
  }
}
