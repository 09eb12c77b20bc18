import { Effect } from "effect"
import { SqlClient } from "effect/sql"

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  // room on each page for a claim's new row version beside the old one: a claim changes no indexed column (HOT)
  yield* sql`ALTER TABLE deliveries SET (fillfactor = 70)`
})
