import { describe, expect, it } from "@effect/vitest"
import { Cause } from "effect"
import { RpcClientError } from "effect/rpc"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { CustomerNotFound, OperatorUnauthorized } from "@whatisup/domain"
import { adminTarget } from "../src/adminClient.ts"
import { explain } from "../src/errors.ts"

describe("finding the gateway", () => {
  it("reads WHATISUP_ADMIN_URL and WHATISUP_ADMIN_TOKEN", () => {
    expect(adminTarget({ WHATISUP_ADMIN_URL: "http://10.0.0.1:9000/", WHATISUP_ADMIN_TOKEN: "t" })).toEqual({
      url: "http://10.0.0.1:9000",
      token: "t",
      tokenSource: "WHATISUP_ADMIN_TOKEN"
    })
  })

  it("falls back to the default URL and the token file in the data dir", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "whatisup-cli-"))
    fs.writeFileSync(path.join(dir, "admin-token"), "from-file\n")
    expect(adminTarget({ WHATISUP_DATA_DIR: dir })).toEqual({
      url: "http://127.0.0.1:8081",
      token: "from-file",
      tokenSource: path.join(dir, "admin-token")
    })
    expect(adminTarget({ WHATISUP_DATA_DIR: path.join(dir, "none") }).token).toBeUndefined()
    fs.rmSync(dir, { recursive: true })
  })
})

describe("explaining failures in one line", () => {
  const target = { url: "http://127.0.0.1:8081", token: "t", tokenSource: "/data/admin-token" }

  it("names the token's source when the gateway refuses it", () => {
    expect(explain(Cause.fail(new OperatorUnauthorized({ message: "no" })), target)).toBe(
      "the gateway refused the operator token from /data/admin-token"
    )
    expect(
      explain(Cause.fail(new OperatorUnauthorized({ message: "no" })), { ...target, token: undefined })
    ).toMatch(/^no operator token: set WHATISUP_ADMIN_TOKEN/)
  })

  it("names the customer that does not exist", () => {
    expect(explain(Cause.fail(new CustomerNotFound({ customer_id: "cus_x" })), target)).toBe(
      "no customer cus_x"
    )
  })

  it("says where it could not connect", () => {
    const error = new RpcClientError.RpcClientError({
      reason: new RpcClientError.RpcClientDefect({ message: "connect ECONNREFUSED", cause: undefined })
    })
    expect(explain(Cause.fail(error), target)).toMatch(
      /^cannot reach the gateway's admin listener at http:\/\/127\.0\.0\.1:8081/
    )
  })
})
