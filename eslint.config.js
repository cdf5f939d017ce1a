import neostandard from 'neostandard'

export default [
  ...neostandard({ ts: true, ignores: ['dist/**', 'packages/*/dist/**', 'migrations/**', 'data/**', '.tap/**', 'coverage/**', 'bench/results/**', 'scratch/**'] }),
  {
    rules: {
      // `void promise` marks a deliberately unawaited call.
      'no-void': ['error', { allowAsStatement: true }],
      // Flags loops whose condition changes in another async task (e.g. a stop flag).
      'no-unmodified-loop-condition': 'off'
    }
  },
  {
    // Where the TypeScript plugin is loaded (neostandard's ts configs): every .ts file.
    files: ['**/*.{ts,tsx,mts,cts}'],
    rules: { '@typescript-eslint/no-explicit-any': 'error' }
  },
  {
    // Tests and load scenarios read GraphQL answers of arbitrary shape (gql<T = Record<string, any>>)
    // and poke at internals on purpose; an `any` there is a probe, never an API.
    files: ['test/**', 'bench/**'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' }
  }
]
