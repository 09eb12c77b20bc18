export { startSimulator } from "./server.ts"
export type { Simulator, SimulatorOptions } from "./server.ts"
export type { LinkedDevice, PairingCodeOptions, ScanOptions } from "./pairing.ts"
export type { Fault } from "./faults.ts"
export type {
  Closure,
  ConnectionRecord,
  Overlap,
  OverlapSide,
  SentStanza,
  StanzaCounts,
  StanzaKind
} from "./history.ts"
export type { Connection } from "./connection.ts"
export type { Account, Device } from "./accounts.ts"
export type { SimulatorLogger } from "./logger.ts"
export { readQr } from "./phone.ts"
export { startControlServer } from "./control.ts"
export type { ControlServer } from "./control.ts"
export type { MediaKind } from "./media.ts"
export type {
  Delivery,
  DeliveryResult,
  Encryption,
  MediaDelivery,
  ReceiptPolicy,
  ReceiptStep,
  ReceivedMessage,
  RetryRequest,
  SentReceipt
} from "./messaging.ts"
