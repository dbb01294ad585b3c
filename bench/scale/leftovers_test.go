package scale

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/coreos/fleet/schema"

	"github.com/kaylee-gitops/kaylee/fleet/fleetsim"
)

// dropLeftovers removes from fleet's registry what its fleet units left
// behind once they were all destroyed, so that the next phase starts on a
// registry like the floor's:
//
//   - unit files no fleet unit uses: fleet never deletes one
//     (registry.DestroyUnit: "TODO(jonboulle): add unit reference
//     counting and actually destroying Units"), and every agent of fleet
//     reads and parses all of them on each of its reconciliations (a
//     quorum read of <prefix>unit/), so the floor's 3,000 would double
//     that work in Kaylee's run;
//   - fleet units' directories left empty: an agent of fleet still
//     running a destroyed unit writes its heartbeat (<prefix>job/<unit>/
//     job-state, with a TTL) once more, which recreates the directory
//     the destroy removed; the heartbeat expires, the directory stays.
//
// It returns how many of each it removed. Nothing else writes to fleet's
// registry meanwhile (between two phases).
func dropLeftovers(etcdURL, prefix string) (files, dirs int, err error) {
	keys := etcdURL + "/v2/keys" + path.Join("/", prefix)
	var jobs v2Node
	if err := v2Get(keys+"/job?recursive=true&quorum=true", &jobs); err != nil {
		return 0, 0, err
	}
	used := map[string]bool{}
	for _, j := range jobs.Nodes {
		if len(j.Nodes) == 0 {
			// dir=true without recursive removes an empty directory only.
			if err := v2Delete(etcdURL + "/v2/keys" + j.Key + "?dir=true"); err != nil {
				return files, dirs, err
			}
			dirs++
			continue
		}
		for _, n := range j.Nodes {
			if path.Base(n.Key) != "object" {
				continue
			}
			var m struct{ UnitHash [20]byte }
			if err := json.Unmarshal([]byte(n.Value), &m); err != nil {
				return files, dirs, fmt.Errorf("%s: %w", n.Key, err)
			}
			used[hex.EncodeToString(m.UnitHash[:])] = true
		}
	}
	var units v2Node
	if err := v2Get(keys+"/unit?quorum=true", &units); err != nil {
		return files, dirs, err
	}
	for _, u := range units.Nodes {
		if used[path.Base(u.Key)] {
			continue
		}
		if err := v2Delete(etcdURL + "/v2/keys" + u.Key + "?recursive=true"); err != nil {
			return files, dirs, err
		}
		files++
	}
	return files, dirs, nil
}

// v2Node is a node of etcd's v2 keys API.
type v2Node struct {
	Key   string   `json:"key"`
	Value string   `json:"value"`
	Nodes []v2Node `json:"nodes"`
}

func v2Get(url string, into *v2Node) error {
	resp, err := httpClient.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil // no such directory yet
	}
	var body struct {
		Node v2Node `json:"node"`
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s %s", url, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	*into = body.Node
	return nil
}

func v2Delete(url string) error {
	req, err := http.NewRequest(http.MethodDelete, url, nil)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("DELETE %s: %s %s", url, resp.Status, b)
	}
	return nil
}

// After fleet's own DestroyUnit, the unit file stays in fleet's registry;
// dropLeftovers removes it and an emptied fleet unit's directory, and
// leaves the live fleet unit and its file as fleet reads them.
func TestDropLeftovers(t *testing.T) {
	e := newEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := fleetsim.Start(ctx, fleetsim.Config{Endpoints: e.Endpoints(), Machines: fleetsim.Machines(1), TTL: 4 * time.Second,
		EngineInterval: time.Second, StartDelay: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	api := c.API()
	unit := func(name, exec string) *schema.Unit {
		return &schema.Unit{Name: name, DesiredState: "loaded",
			Options: []*schema.UnitOption{{Section: "Service", Name: "ExecStart", Value: exec}}}
	}
	for _, u := range []*schema.Unit{unit("kx:gone.service", "/bin/gone"), unit("kx:kept.service", "/bin/kept")} {
		if err := api.CreateUnit(u); err != nil {
			t.Fatal(err)
		}
	}
	if err := api.DestroyUnit("kx:gone.service"); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPut, e.ClientURL()+"/v2/keys"+c.KeyPrefix()+"job/kx:empty.service?dir=true", nil)
	if resp, err := httpClient.Do(req); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("making an empty fleet unit directory: %v %v", resp, err)
	}
	unitFiles := func() int {
		var n v2Node
		if err := v2Get(e.ClientURL()+"/v2/keys"+c.KeyPrefix()+"unit", &n); err != nil {
			t.Fatal(err)
		}
		return len(n.Nodes)
	}
	if n := unitFiles(); n != 2 {
		t.Fatalf("before: %d unit files in fleet's registry, want 2 (fleet keeps a destroyed unit's)", n)
	}

	files, dirs, err := dropLeftovers(e.ClientURL(), c.KeyPrefix())
	if err != nil || files != 1 || dirs != 1 {
		t.Fatalf("dropLeftovers: %d files, %d directories, %v; want 1, 1", files, dirs, err)
	}
	if n := unitFiles(); n != 1 {
		t.Errorf("after: %d unit files, want 1", n)
	}
	units, err := api.Units()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range units {
		names = append(names, u.Name)
		if u.Name == "kx:kept.service" && (len(u.Options) != 1 || u.Options[0].Value != "/bin/kept") {
			t.Errorf("kx:kept.service's unit file as fleet reads it: %+v", u.Options)
		}
	}
	if strings.Join(names, " ") != "kx:kept.service" {
		t.Errorf("fleet's units after: %v, want kx:kept.service only", names)
	}
	if files, dirs, err := dropLeftovers(e.ClientURL(), c.KeyPrefix()); err != nil || files+dirs != 0 {
		t.Errorf("again: %d files, %d directories, %v; want none", files, dirs, err)
	}
}
