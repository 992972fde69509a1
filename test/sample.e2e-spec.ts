import 'reflect-metadata';
import type { INestApplication, INestMicroservice } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import type { App } from 'supertest/types.js';
import { GearmanClient } from 'nestjs-gearman/engine';
import { GatewayModule } from '../sample/gateway/gateway.module.js';
import { EmailOutbox } from '../sample/worker/email-outbox.service.js';
import { createWorkerTransport, WorkerModule } from '../sample/worker/worker.module.js';
import { gearmanServers, httpPort } from '../sample/config.js';
import { useGearmand, useResources } from './support/harness.js';
import { eventually } from './support/wait.js';

/**
 * The sample application end to end: its worker microservice and its HTTP gateway, booted from the
 * sample's own modules against two real gearmands, driven over HTTP with supertest.
 */

interface FunctionRow {
  function: string;
  total: number;
  running: number;
  workers: number;
}

describe('sample application (worker + HTTP gateway) on two gearmands', () => {
  const g1 = useGearmand();
  const g2 = useGearmand();
  const shared = useResources(g1, { scope: 'all' });
  let servers: string[];
  let worker: INestMicroservice | undefined;
  let gateway: INestApplication;
  let http: App;

  async function startWorker(): Promise<INestMicroservice> {
    const module = await Test.createTestingModule({ imports: [WorkerModule] }).compile();
    const app = module.createNestMicroservice({
      strategy: createWorkerTransport(servers, { logger: false }),
      logger: false,
    });
    await app.listen();
    return app;
  }

  async function stopWorker(): Promise<void> {
    await worker?.close();
    worker = undefined;
  }

  function fn(body: { functions: FunctionRow[] }, name: string): FunctionRow | undefined {
    return body.functions.find((f) => f.function === name);
  }

  beforeAll(async () => {
    // The sample reads its servers from GEARMAN_SERVERS; the tests pass the same list explicitly.
    servers = gearmanServers({ GEARMAN_SERVERS: `${g1.address}, ${g2.address}` });
    worker = await startWorker();
    shared.defer(() => stopWorker());
    const module = await Test.createTestingModule({
      imports: [GatewayModule.forRoot({ servers, healthLogs: false })],
    }).compile();
    gateway = module.createNestApplication({ logger: false });
    await gateway.init();
    shared.defer(() => gateway.close());
    http = gateway.getHttpServer();
  });

  it('reads GEARMAN_SERVERS and PORT', () => {
    expect(servers).toEqual([g1.address, g2.address]);
    expect(gearmanServers({})).toEqual(['127.0.0.1:4730']);
    expect(httpPort({ PORT: '8080' })).toBe(8080);
    expect(httpPort({})).toBe(3000);
    expect(() => httpPort({ PORT: 'eighty' })).toThrow('PORT="eighty" is not a TCP port');
    expect(() => gearmanServers({ GEARMAN_SERVERS: ' , ' })).toThrow('names no server');
  });

  describe('POST /math/sum (request/response)', () => {
    it('answers the sum', async () => {
      const res = await request(http)
        .post('/math/sum')
        .send({ numbers: [1, 2, 3.5] })
        .expect(200);
      expect(res.body).toEqual({ sum: 6.5 });
    });

    it('400 with the worker error when an item is not a number', async () => {
      const res = await request(http)
        .post('/math/sum')
        .send({ numbers: [1, 'two'] })
        .expect(400);
      expect(res.body).toEqual({
        code: 'BAD_REQUEST',
        message: 'math.sum takes a JSON array of numbers, e.g. [1, 2, 3]',
      });
    });

    it('400 from the gateway when the body has no numbers', async () => {
      const res = await request(http).post('/math/sum').send({}).expect(400);
      expect(res.body.message).toBe('send { "numbers": [1, 2, 3] }');
    });
  });

  describe('POST /reports (streamed values with progress)', () => {
    it('collects every streamed value and every progress report, in order', async () => {
      const res = await request(http).post('/reports').send({ name: 'q3', rows: 4 }).expect(200);
      expect(res.body.values).toEqual([1, 2, 3, 4].map((row) => ({ report: 'q3', row, value: row * row })));
      expect(res.body.progress).toEqual([1, 2, 3, 4].map((numerator) => ({ numerator, denominator: 4 })));
      expect(res.body.handle).toMatch(/^H:/);
      expect(servers).toContain(res.body.server);
    });

    it('a single row arrives as the final result alone', async () => {
      const res = await request(http).post('/reports').send({ rows: 1 }).expect(200);
      expect(res.body.values).toEqual([{ report: 'report', row: 1, value: 1 }]);
      expect(res.body.progress).toEqual([{ numerator: 1, denominator: 1 }]);
    });

    it('400 when the row count is out of range', async () => {
      const res = await request(http).post('/reports').send({ rows: 0 }).expect(400);
      expect(res.body).toEqual({ code: 'BAD_REQUEST', message: 'rows must be an integer from 1 to 100' });
    });
  });

  describe('POST /emails (background job)', () => {
    it('202 with the job handle; the worker sends the email', async () => {
      const res = await request(http)
        .post('/emails')
        .send({ to: 'ada@example.com', subject: 'Welcome', body: 'Hi Ada' })
        .expect(202);
      expect(res.body).toEqual({ queued: true, handle: expect.stringMatching(/^H:/) });
      const outbox = worker!.get(EmailOutbox);
      const sent = await eventually(
        () => {
          const found = outbox.sent.find((e) => e.subject === 'Welcome');
          if (!found) throw new Error(`outbox has ${outbox.sent.length} emails`);
          return found;
        },
        5000,
        'the worker to send the email',
      );
      expect(sent).toMatchObject({
        to: 'ada@example.com',
        subject: 'Welcome',
        body: 'Hi Ada',
        handle: res.body.handle,
      });
      expect(servers).toContain(sent.server);
    });

    it('400 without a recipient', async () => {
      await request(http).post('/emails').send({ subject: 'no one' }).expect(400);
    });
  });

  describe('POST /orders/validate (RpcException)', () => {
    it('200 with the validation of a good order', async () => {
      const order = {
        id: 'A-1',
        lines: [
          { sku: 'pen', quantity: 2, price: 150 },
          { sku: 'pad', quantity: 1, price: 400 },
        ],
      };
      const res = await request(http).post('/orders/validate').send(order).expect(200);
      expect(res.body).toEqual({ id: 'A-1', valid: true, total: 700 });
    });

    it("422 with the worker's RpcException body, as thrown", async () => {
      const res = await request(http).post('/orders/validate').send({ id: 'A-2', lines: [] }).expect(422);
      expect(res.body).toEqual({ code: 'INVALID', message: 'order A-2 has no lines' });
    });

    it('422 naming the bad line', async () => {
      const res = await request(http)
        .post('/orders/validate')
        .send({ id: 'A-3', lines: [{ sku: 'pen', quantity: 0, price: 150 }] })
        .expect(422);
      expect(res.body).toEqual({ code: 'INVALID', message: 'line 1 (pen): quantity must be a positive integer' });
    });
  });

  describe('POST /text/upper (plain text for any Gearman client)', () => {
    it('upper-cases the text', async () => {
      const res = await request(http).post('/text/upper').send({ text: 'hello, gearman' }).expect(200);
      expect(res.body).toEqual({ text: 'HELLO, GEARMAN' });
    });

    it('a plain Gearman client sends and gets plain bytes, no JSON', async () => {
      const client = new GearmanClient({ servers });
      try {
        const result = await client.submit('text.upper', 'straße ok').result();
        expect(result.toString('utf8')).toBe('STRASSE OK');
      } finally {
        await client.close();
      }
    });

    it('blank text: the worker answers a plain WORK_FAIL (errorMode fail), the gateway a 502', async () => {
      const res = await request(http).post('/text/upper').send({ text: '   ' }).expect(502);
      expect(res.body).toMatchObject({ code: 'JOB_FAILED' });
    });

    it('400 when text is not a string', async () => {
      await request(http).post('/text/upper').send({ text: 42 }).expect(400);
    });
  });

  describe('GET /admin/status', () => {
    it('shows every server, the queues and the worker on each server', async () => {
      const res = await request(http).get('/admin/status').expect(200);
      expect(res.body.servers).toEqual(servers.map((server) => ({ server, up: true })));
      for (const name of ['math.sum', 'report.generate', 'email.send', 'orders.validate', 'text.upper']) {
        expect(fn(res.body, name)).toMatchObject({ total: 0, running: 0, workers: 2 });
      }
      const sampleWorkers = res.body.workers.filter(
        (w: { clientId?: string }) => w.clientId === 'nestjs-gearman-sample-worker',
      );
      expect(sampleWorkers.map((w: { server: string }) => w.server).sort()).toEqual([...servers].sort());
      expect(sampleWorkers[0].functions.sort()).toEqual([
        'email.send',
        'math.sum',
        'orders.validate',
        'report.generate',
        'text.upper',
      ]);
    });

    it('background jobs wait in the queues while no worker runs, and drain when one starts', async () => {
      await stopWorker();
      await eventually(
        async () => {
          const res = await request(http).get('/admin/status').expect(200);
          expect(res.body.workers).toEqual([]);
          return true;
        },
        5000,
        'gearmand to forget the stopped worker',
      );

      const subjects = ['queued 1', 'queued 2', 'queued 3'];
      for (const subject of subjects) {
        await request(http).post('/emails').send({ to: 'bob@example.com', subject }).expect(202);
      }
      const queued = await request(http).get('/admin/status').expect(200);
      expect(fn(queued.body, 'email.send')).toEqual({ function: 'email.send', total: 3, running: 0, workers: 0 });

      // Jobs queued with no worker to run them: the health check says so.
      const health = await request(http).get('/health').expect(503);
      expect(health.body.details.gearman.message).toBe('email.send: 3 jobs queued but no worker registered');

      worker = await startWorker();
      const outbox = worker.get(EmailOutbox);
      await eventually(
        async () => {
          const res = await request(http).get('/admin/status').expect(200);
          expect(fn(res.body, 'email.send')).toMatchObject({ total: 0, workers: 2 });
          return true;
        },
        10_000,
        'the new worker to drain the email queue',
      );
      expect(outbox.sent.map((e) => e.subject).sort()).toEqual(subjects);
      await request(http).get('/health').expect(200);
    });
  });

  describe('GET /health', () => {
    type Health = {
      status: number;
      body: { status: string; details: { gearman: { status: string; servers: Record<string, { status: string }> } } };
    };

    async function healthUntil(expected: (h: Health) => boolean, what: string): Promise<Health> {
      return eventually(
        async () => {
          const res = (await request(http).get('/health')) as unknown as Health;
          if (!expected(res)) throw new Error(`last answer ${res.status} ${JSON.stringify(res.body)}`);
          return res;
        },
        20_000,
        what,
      );
    }

    it('up, degraded with one of two servers down, down (503) with both, up again after a restart', async () => {
      const up = await request(http).get('/health').expect(200);
      expect(up.body.status).toBe('ok');
      expect(up.body.details.gearman.status).toBe('up');
      expect(Object.keys(up.body.details.gearman.servers).sort()).toEqual([...servers].sort());

      await g2.server.stop();
      const degraded = await healthUntil((h) => h.status === 200 && h.body.status === 'degraded', '/health degraded');
      expect(degraded.body.details.gearman.status).toBe('degraded');
      expect(degraded.body.details.gearman.servers[g1.address].status).toBe('up');
      expect(degraded.body.details.gearman.servers[g2.address].status).toBe('down');
      const partial = await request(http).get('/admin/status').expect(200);
      expect(partial.body.servers).toEqual([
        { server: g1.address, up: true },
        { server: g2.address, up: false, error: expect.any(String) },
      ]);
      // The gateway and the worker keep working through the server that is left.
      await request(http)
        .post('/math/sum')
        .send({ numbers: [20, 22] })
        .expect(200, { sum: 42 });

      await g1.server.stop();
      const down = await healthUntil((h) => h.status === 503, '/health down (503)');
      expect(down.body.status).toBe('error');
      expect(down.body.details.gearman.status).toBe('down');
      await request(http).get('/admin/status').expect(503);

      await Promise.all([g1.server.restart(), g2.server.restart()]);
      const back = await healthUntil((h) => h.status === 200 && h.body.status === 'ok', '/health up again');
      expect(back.body.details.gearman.status).toBe('up');

      // The worker and the gateway's client reconnected by themselves.
      await eventually(
        async () => {
          await request(http)
            .post('/math/sum')
            .send({ numbers: [1, 1] })
            .expect(200, { sum: 2 });
          const res = await request(http).get('/admin/status').expect(200);
          expect(fn(res.body, 'math.sum')).toMatchObject({ workers: 2 });
          return true;
        },
        20_000,
        'the worker to serve jobs again on both servers',
      );
    }, 90_000);
  });
});
