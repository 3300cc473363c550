// Package archtest holds the test that keeps docs/architecture.md true: the
// table of packages and what each may import, and the rule that a client
// links no server code. It has no code of its own.
package archtest
