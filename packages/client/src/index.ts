export { createLicenseClient } from './client.ts'
export type {
  FetchLike, HeartbeatHandlers, HeartbeatOptions, HeartbeatResult, LicenseClient, LicenseClientOptions, LicenseValidation,
  OfflineReason, OfflineResult, ResponseLike, RevocationList, RevocationListBody, RevocationsInput, StorageLike, ValidationCode
} from './client.ts'
export { LicenseClientError, type LicenseClientErrorCode } from './errors.ts'
export {
  answerSigningInput, canonicalJson, checkLicenseClaims, CLOCK_SKEW_SECONDS, decodeBase64Url, decodeCompact, encodeBase64Url,
  importVerificationKey, verifyCompact, verifySignature
} from './verify.ts'
export type { LicensePayload, PublicKeyInput, RevocationPayload, SigningAlgorithm, VerificationKey } from './verify.ts'
