export * from './tables.ts'
export { relations } from './relations.ts'
