// Friendly aliases over the generated OpenAPI types (src/api/schema.d.ts).
import type { components, paths } from './schema'

type S = components['schemas']
export type UserResponse = S['UserResponse']
export type AuthResponse = S['AuthResponse']
export type TokenResponse = S['TokenResponse']
export type AuthStatusResponse = S['AuthStatusResponse']
export type ListSessionItem = S['ListSessionItem']
export type SessionDetail = S['SessionDetail']
export type HistoryEvent = S['HistoryEvent']
export type ChatRequest = S['ChatRequest']
export type FileInfo = S['FileInfo']
export type ShellView = S['ShellView']
export type FileView = S['FileView']
export type Attachment = S['Attachment']
export type Plan = S['PlanView']
export type Subscription = S['SubscriptionView']
export type CheckoutCreated = S['CheckoutCreated']
export type PortalCreated = S['PortalCreated']
/** The plans checkout sells. */
export type PaidPlan = S['PaidPlan']

export type PlanId = 'free' | 'basic' | 'pro' | 'enterprise'
export type SubscriptionStatus = 'active' | 'trialing' | 'past_due' | 'canceled' | 'unpaid' | 'incomplete'

/** `data` of a 402 (run limit reached or subscription inactive). */
export interface PaymentRequiredData {
  reason?: string
  plan?: string
  used?: number
  limit?: number
  resets_at?: string
}

export type SessionStatus = 'pending' | 'running' | 'waiting' | 'completed' | 'failed'

export type Method = 'get' | 'put' | 'post' | 'delete'

/** Paths that have an operation for `M`. */
export type PathsWith<M extends Method> = {
  [P in keyof paths]: paths[P][M] extends undefined | never ? never : P
}[keyof paths]

type Op<P extends keyof paths, M extends Method> = NonNullable<paths[P][M]>

type OkEnvelope<O> = O extends { responses: { 200: { content: { 'application/json': infer E } } } }
  ? E
  : never

/** The `data` of the enveloped 200 answer of operation (P, M). */
export type DataOf<P extends keyof paths, M extends Method> =
  OkEnvelope<Op<P, M>> extends { data?: infer D } ? D : null

type ReqBody<P extends keyof paths, M extends Method> = Op<P, M> extends { requestBody?: infer R } ? R : never

/** The JSON request body of operation (P, M), or `undefined` if it takes none. */
export type BodyOf<P extends keyof paths, M extends Method> = [NonNullable<ReqBody<P, M>>] extends [never]
  ? undefined
  : NonNullable<ReqBody<P, M>> extends { content: { 'application/json': infer B } }
    ? undefined extends ReqBody<P, M>
      ? B | undefined
      : B
    : undefined

/** Path parameters of operation (P, M). */
export type PathParamsOf<P extends keyof paths, M extends Method> =
  Op<P, M> extends { parameters: { path: infer PP } } ? ([PP] extends [never] ? undefined : PP) : undefined

export type QueryOf<P extends keyof paths, M extends Method> =
  Op<P, M> extends { parameters: { query?: infer Q } } ? Q : undefined
