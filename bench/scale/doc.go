// Package scale is Kaylee's scale benchmark (scripts/bench-scale,
// docs/benchmarks.md): N units of 3 replicas with mixed constraints, on
// fleet's own engine and agents (fleet/fleetsim) with M machines, a real
// git server over HTTP, an embedded etcd, and kaylee agent as a process of
// its own, so that its CPU and memory are read apart from the rest.
//
// For each size it measures, in one run: fleet's floor (the same fleet
// units created directly through fleet's API, until fleet reports them all
// running), Kaylee's time to production (a signed push webhook until
// every unit's status is running at its spec and its fleet units run), a
// no-op pass (its time and its etcd requests), the agent's CPU while idle,
// and its CPU seconds and peak memory. The world and the measurements are
// in the package's tests (BenchmarkScale, TestScaleSmoke); this file's
// siblings hold the pure parts: the units, the table, /proc and
// Prometheus text readers, and a proxy that counts the agent's etcd v2
// requests.
package scale
