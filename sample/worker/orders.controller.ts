import { Controller } from '@nestjs/common';
import { MessagePattern, Payload, RpcException } from '@nestjs/microservices';

export interface OrderLine {
  sku: string;
  quantity: number;
  /** Unit price in cents. */
  price: number;
}

export interface Order {
  id: string;
  lines: OrderLine[];
}

export interface OrderValidation {
  id: string;
  valid: true;
  /** Total in cents. */
  total: number;
}

/**
 * A handler that fails on purpose: an invalid order throws `RpcException({ code: 'INVALID', message })`,
 * which reaches a Nest caller as exactly that object (Gearman WORK_EXCEPTION).
 */
@Controller()
export class OrdersController {
  @MessagePattern('orders.validate')
  validate(@Payload() order: Order | undefined): OrderValidation {
    const problem = this.findProblem(order);
    if (problem) throw new RpcException({ code: 'INVALID', message: problem });
    const { id, lines } = order as Order;
    return { id, valid: true, total: lines.reduce((sum, l) => sum + l.quantity * l.price, 0) };
  }

  private findProblem(order: Order | undefined): string | undefined {
    if (typeof order !== 'object' || order === null) return 'an order must be a JSON object';
    if (typeof order.id !== 'string' || order.id === '') return 'order.id is required';
    if (!Array.isArray(order.lines) || order.lines.length === 0) return `order ${order.id} has no lines`;
    for (const [i, line] of order.lines.entries()) {
      if (typeof line?.sku !== 'string' || line.sku === '') return `line ${i + 1} has no sku`;
      if (!Number.isInteger(line.quantity) || line.quantity <= 0)
        return `line ${i + 1} (${line.sku}): quantity must be a positive integer`;
      if (!Number.isInteger(line.price) || line.price < 0)
        return `line ${i + 1} (${line.sku}): price must be a whole number of cents`;
    }
    return undefined;
  }
}
