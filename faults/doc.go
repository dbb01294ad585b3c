// Package faults holds Kaylee's fault tests: real kaylee processes against
// real etcd and fleet's own engine and agents, with faults injected from
// outside (a frozen leader, etcd members stopped, network cut) and
// samplers checking the guarantees while they last. The figures they
// measure are reported in FAULTS.md.
package faults
