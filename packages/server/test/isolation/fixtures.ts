import { auditFixtures } from "./audit.ts"
import { channelFixtures } from "./channels.ts"
import { eventFixtures } from "./events.ts"
import { messageFixtures } from "./messages.ts"
import type { IsolationFixture } from "./fixture.ts"
import { tenancyFixtures } from "./tenancy.ts"
import { webhookFixtures } from "./webhooks.ts"

/** Every customer-scoped route of the public API, each with the fixture that creates what it acts on. */
export const isolationFixtures: Record<string, IsolationFixture> = {
  ...tenancyFixtures,
  ...channelFixtures,
  ...eventFixtures,
  ...messageFixtures,
  ...auditFixtures,
  ...webhookFixtures
}
