// Package memsafe keeps secrets out of reach of other processes and of the
// disk: process hardening (no core dumps, no ptrace by the same uid, raised
// RLIMIT_MEMLOCK) and sealed storage for secret values in memguard enclaves.
//
// It is the only package that touches memguard. memguard panics, and can
// deadlock while purging, when mlock fails (awnumar/memguard issue 173), so
// every allocation of locked memory goes through a Budget that knows the
// RLIMIT_MEMLOCK and refuses, with an error, what would exceed it.
package memsafe
