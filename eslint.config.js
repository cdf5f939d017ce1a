import neostandard from 'neostandard'

export default [
  ...neostandard({ ts: true, ignores: ['dist/**', 'packages/*/dist/**', 'migrations/**', 'data/**', '.tap/**', 'coverage/**', 'bench/results/**', 'scratch/**'] }),
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      // `void promise` marks a deliberately unawaited call.
      'no-void': ['error', { allowAsStatement: true }],
      // Flags loops whose condition changes in another async task (e.g. a stop flag).
      'no-unmodified-loop-condition': 'off'
    }
  }
]
