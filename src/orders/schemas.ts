/**
 * The order's wire shapes as zod schemas: the single source for request validation, response
 * typing and the OpenAPI document.
 */
import { z } from 'zod';
import { CANCELLATION_REASONS, ORDER_STATUSES, PAYMENT_STATES, STOCK_STATES } from './lifecycle.js';

export const MAX_UNIT_PRICE = 1_000_000_000_000;
export const MAX_QUANTITY = 10_000;
export const MAX_ITEMS = 100;

/** Control characters (U+0000–U+001F, U+007F) are rejected in every string field. */
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

export const safeText = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((s) => !CONTROL_CHARS.test(s), 'must not contain control characters')
    .refine((s) => s.isWellFormed(), 'must not contain unpaired surrogates');

export const OrderItem = z.strictObject({
  sku: safeText(64).meta({ description: 'Stock keeping unit, 1–64 characters', example: 'SKU-1' }),
  quantity: z.int().min(1).max(MAX_QUANTITY).meta({ example: 2 }),
  unitPrice: z
    .int()
    .min(0)
    .max(MAX_UNIT_PRICE)
    .meta({ description: "Price of one unit in the currency's minor unit (e.g. cents)", example: 1999 }),
});
export type OrderItem = z.infer<typeof OrderItem>;

export const OrderInput = z
  .strictObject({
    customerId: safeText(64)
      .optional()
      .meta({
        description:
          "Whose order it is. With a customer's token it may be left out (it is the token's sub; another " +
          'value is refused with 403); required with orders:admin and without authentication.',
        example: 'c-42',
      }),
    currency: z
      .string()
      .regex(/^[A-Z]{3}$/, 'must be three uppercase letters (ISO 4217)')
      .meta({ description: 'ISO 4217 code', example: 'EUR' }),
    items: z.array(OrderItem).min(1).max(MAX_ITEMS),
  })
  .superRefine((order, ctx) => {
    if (!Number.isSafeInteger(orderTotal(order.items))) {
      ctx.addIssue({ code: 'custom', path: ['items'], message: 'the order total must stay a safe integer' });
    }
  })
  .meta({ id: 'CreateOrder' });
export type OrderInput = z.infer<typeof OrderInput>;

export const OrderStatus = z.enum(ORDER_STATUSES);

/**
 * The order as every read, the 201 and every published event's `data` carry it (one
 * serialisation; the key order here is the wire's).
 */
export const Order = z
  .object({
    id: z.uuid(),
    customerId: z.string(),
    status: OrderStatus,
    currency: z.string(),
    items: z.array(OrderItem),
    total: z.int().meta({ description: 'Sum of quantity × unitPrice, in minor units' }),
    createdAt: z.iso.datetime(),
    version: z.int().min(1).meta({
      description: 'Raised by one with every change; the ETag (`"<version>"`) and If-Match name it',
      example: 1,
    }),
    updatedAt: z.iso.datetime().meta({ description: 'The last change (createdAt until the first)' }),
    stock: z.enum(STOCK_STATES).meta({ description: "Catalog's answer: StockReserved or StockRejected" }),
    payment: z
      .enum(PAYMENT_STATES)
      .meta({ description: "Payments' answer: PaymentCaptured or PaymentFailed" }),
    cancellationReason: z
      .enum(CANCELLATION_REASONS)
      .nullable()
      .meta({ description: 'Why a cancelled order was cancelled; null otherwise' }),
  })
  .meta({ id: 'Order' });
export type Order = z.infer<typeof Order>;

export const OrderIdParams = z.strictObject({ id: z.guid('must be a UUID') });

export function orderTotal(items: readonly { quantity: number; unitPrice: number }[]): number {
  let total = 0;
  for (const item of items) total += item.quantity * item.unitPrice;
  return total;
}
