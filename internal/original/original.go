// Package original restates, for tests, what monder/kaylee — the program
// Kaylee descends from, at commit f51e5f8 of github.com/monder/kaylee —
// put in fleet for a stored unit: the names, options (in its order),
// conflicts and desired state of the fleet units it created, and how it
// created them (through fleet's client API, one unit at a time, each
// waited for until it ran). It is a restatement in Kaylee's own code, not a
// copy: a workplace rule forbids committing the original's code, so its
// behaviour was read from its fleet/fleet.go and engine/rkt.go and written
// again here.
//
// Tests use it to put a cluster in the state the original leaves, then
// start Kaylee's scheduler on it (adoption). It imports package testing so
// that the kaylee binary can never link it (TestBinaryLinksNoTesting).
package original

import (
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/coreos/fleet/client"
	"github.com/coreos/fleet/schema"
)

// spec is the stored unit as the original decoded it: the fields it knew,
// with its JSON names, in its order. Its hash is the SHA-1 of this struct
// marshalled again (fields it did not know are dropped, "apps" and a
// volume's "path" are always written), so the field order and tags here
// are what the original's unit names depend on.
type spec struct {
	Name               string `json:"name"`
	Replicas           int    `json:"replicas,omitempty"`
	MaxReplicasPerHost int    `json:"maxReplicasPerHost,omitempty"`
	Engine             string `json:"engine,omitempty"`

	EnvFiles []string `json:"envFiles,omitempty"`
	Env      []envVar `json:"env,omitempty"`
	Volumes  []volume `json:"volumes,omitempty"`
	Net      string   `json:"net,omitempty"`
	Apps     []app    `json:"apps"`
	Args     []string `json:"args,omitempty"`
	Machine  []string `json:"machine,omitempty"`
	MachID   string   `json:"machineId,omitempty"`
	Global   bool     `json:"global,omitempty"`
	Conflict []string `json:"conflicts,omitempty"`
}

type envVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type volume struct {
	ID      string `json:"id,omitempty"`
	Driver  string `json:"driver,omitempty"`
	Source  string `json:"source,omitempty"`
	Path    string `json:"path"`
	Options string `json:"options,omitempty"`
}

type app struct {
	Image string   `json:"image"`
	Cmd   string   `json:"cmd,omitempty"`
	Args  []string `json:"args,omitempty"`
}

// Hash is the 6 hex digits the original put in the names of a stored
// unit's fleet units: the first three bytes of the SHA-1 of its JSON as
// the original marshalled it again.
func Hash(stored []byte) (string, error) {
	s, _, err := decode(stored)
	return s, err
}

func decode(stored []byte) (string, *spec, error) {
	var s spec
	if err := json.Unmarshal(stored, &s); err != nil {
		return "", nil, fmt.Errorf("decoding the stored unit as monder/kaylee did: %w", err)
	}
	data, err := json.Marshal(&s)
	if err != nil {
		return "", nil, fmt.Errorf("marshalling the unit as monder/kaylee did: %w", err)
	}
	sum := sha1.Sum(data)
	return fmt.Sprintf("%x", sum[:3]), &s, nil
}

// Units are the fleet units the original created for the stored unit
// (its JSON value under <etcd prefix>/units/<name>) with the fleet unit
// prefix: one unit without replicas (whose Conflicts keeps every other
// unit of the name off its machine), else one per replica, index 1 to
// replicas, in maxReplicasPerHost conflict groups (replica i in group
// i % groups) whose ids are 3 bytes read from groups (random in the
// original: pass a seeded reader for repeatable names).
func Units(prefix string, stored []byte, groups io.Reader) ([]*schema.Unit, error) {
	hash, s, err := decode(stored)
	if err != nil {
		return nil, err
	}
	replicas, replicated := s.Replicas, s.Replicas != 0
	if !replicated {
		replicas = 1
	}
	perHost := s.MaxReplicasPerHost
	if perHost == 0 {
		perHost = replicas
	}
	ids := make([]string, perHost)
	for i := range ids {
		b := make([]byte, 3)
		if _, err := io.ReadFull(groups, b); err != nil {
			return nil, fmt.Errorf("reading group ids: %w", err)
		}
		ids[i] = fmt.Sprintf("%x", b)
	}
	units := make([]*schema.Unit, 0, replicas)
	for i := 1; i <= replicas; i++ {
		group := ids[i%len(ids)]
		name := fmt.Sprintf("%s:%s:%s:%s:%d.service", prefix, s.Name, hash, group, i)
		conflicts := []string{fmt.Sprintf("%s:%s:*.service", prefix, s.Name)}
		if replicated {
			conflicts = []string{fmt.Sprintf("%s:%s:%s:%s:*.service", prefix, s.Name, hash, group)}
		}
		for _, c := range s.Conflict {
			conflicts = append(conflicts, fmt.Sprintf("%s:%s:*.service", prefix, c))
		}
		units = append(units, &schema.Unit{Name: name, DesiredState: "launched", Options: options(s, name, conflicts)})
	}
	return units, nil
}

// Launch creates units in fleet as the original did: one at a time
// through fleet's client API, each waited for until fleet reports it
// running (on every machine that has it, for a global unit) before the
// next. It fails t when a call fails or a unit does not run within
// timeout.
func Launch(t testing.TB, api client.API, units []*schema.Unit, timeout time.Duration) {
	t.Helper()
	for _, u := range units {
		LaunchAll(t, api, []*schema.Unit{u}, timeout)
	}
}

// LaunchAll creates units through fleet's client API as the original did,
// all of them before waiting until every one runs: the state the original
// leaves (fleet's least-loaded engine places them), sooner. It fails t
// when a call fails or a unit does not run within timeout.
func LaunchAll(t testing.TB, api client.API, units []*schema.Unit, timeout time.Duration) {
	t.Helper()
	for _, u := range units {
		if err := api.CreateUnit(u); err != nil {
			t.Fatalf("creating %s as monder/kaylee did: %v", u.Name, err)
		}
	}
	deadline := time.Now().Add(timeout)
	for _, u := range units {
		for {
			states, err := api.UnitStates()
			if err != nil {
				t.Fatalf("fleet unit states: %v", err)
			}
			if running(u.Name, states) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s created as monder/kaylee did is not running after %s: %s", u.Name, timeout, describe(u.Name, states))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func running(name string, states []*schema.UnitState) bool {
	n := 0
	for _, s := range states {
		if s.Name != name {
			continue
		}
		if s.SystemdSubState != "running" {
			return false
		}
		n++
	}
	return n > 0
}

func describe(name string, states []*schema.UnitState) string {
	var out []string
	for _, s := range states {
		if s.Name == name {
			out = append(out, fmt.Sprintf("%s/%s on %s", s.SystemdActiveState, s.SystemdSubState, s.MachineID))
		}
	}
	if len(out) == 0 {
		return "no state"
	}
	return strings.Join(out, ", ")
}
