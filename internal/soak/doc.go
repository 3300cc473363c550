// Package soak holds the soak test of a Parley network and the cascade
// scenario (its tests are the package; see README.md): 2,000 users of the
// load client (internal/loadgen) attaching, messaging, leaving and calling
// echo while supernodes, each a process of its own, are killed and
// restarted, and a third of them at once; every part on a host of its own
// in a lab of network namespaces (internal/netlab). `make soak` runs it for an hour;
// `make test` for about three minutes. At the end nothing may be lost or
// delivered twice, every online user must be findable, and every
// supernode's memory and goroutines must be back to their baseline.
package soak
