package original

import (
	"bytes"
	"crypto/sha1"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/kaylee-gitops/kaylee/deploy"
)

// The seed's countly example as the original renders it: the seed's JSON
// (field order as the original's struct, so its SHA-1 is that of the
// stored bytes), 4 replicas from index 1 in 2 groups (i % 2), and the rkt
// unit file of engine/rkt.go, option by option.
func TestUnitsCountly(t *testing.T) {
	stored, err := os.ReadFile("../../deploy/testdata/countly.json")
	if err != nil {
		t.Fatal(err)
	}
	stored = bytes.TrimSpace(stored)
	sum := sha1.Sum(stored)
	hash := fmt.Sprintf("%x", sum[:3])
	// Group ids: 010101 (group 0), 020202 (group 1).
	units, err := Units("k2", stored, bytes.NewReader([]byte{1, 1, 1, 2, 2, 2}))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range units {
		names = append(names, u.Name)
		if u.DesiredState != "launched" {
			t.Errorf("%s: desired state %q", u.Name, u.DesiredState)
		}
		if _, ok := deploy.ParseOriginalUnitName("k2", u.Name); !ok {
			t.Errorf("%s does not parse as the original's unit name", u.Name)
		}
	}
	want := fmt.Sprintf("k2:countly:%[1]s:020202:1.service k2:countly:%[1]s:010101:2.service k2:countly:%[1]s:020202:3.service k2:countly:%[1]s:010101:4.service", hash)
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("names:\n got %s\nwant %s", got, want)
	}
	var lines []string
	for _, o := range units[0].Options {
		lines = append(lines, o.Section+" "+o.Name+"="+o.Value)
	}
	id := "k2_countly_" + hash + "_020202_1"
	wantLines := []string{
		"Unit Requires=flanneld.service",
		"Unit After=flanneld.service",
		`Service Environment="MONGO_URL=mongodb://mongo-1.lan,mongo-2.lan,mongo-3.lan/countly?replicaSet=main"`,
		"Service Environment=KAYLEE_ID=" + id,
		"Service TimeoutStartSec=0",
		"Service KillMode=mixed",
		"Service ExecStartPre=/usr/bin/rkt fetch --insecure-options=image,ondisk docker://monder/countly-docker:latest",
		"Service ExecStartPre=/usr/bin/rkt fetch --insecure-options=image,ondisk monder.cc/rkt-sidekick:v0.0.3",
		"Service ExecStart=/usr/bin/rkt run --insecure-options=image,ondisk --inherit-env --uuid-file-save=/var/run/kaylee_" + id +
			" --dns=10.0.0.2 --net=flannel,default docker://monder/countly-docker:latest  --  --- monder.cc/rkt-sidekick:v0.0.3  -- " +
			"--cidr 10.5.0.0/16 --interval 10m --expireDir /services --format '$$ip:80' /services/countly/${KAYLEE_ID} ---",
		"Service ExecStop=-/usr/bin/rkt stop --uuid-file=/var/run/kaylee_" + id,
		"Service ExecStopPost=-/usr/bin/rkt rm --uuid-file=/var/run/kaylee_" + id,
		"Service ExecStopPost=/usr/bin/rkt gc",
		"Service ExecStopPost=/usr/bin/rkt image gc",
		"Service Restart=always",
		"Service RestartSec=30",
		"X-Fleet MachineMetadata=ssd=false",
		"X-Fleet Conflicts=k2:countly:" + hash + ":020202:*.service",
	}
	if got, w := strings.Join(lines, "\n"), strings.Join(wantLines, "\n"); got != w {
		t.Fatalf("options of %s:\n got:\n%s\nwant:\n%s", units[0].Name, got, w)
	}
}

// A unit without replicas is one unit, index 1, whose Conflicts keeps
// every other unit of its name off its machine (Kaylee's new ones too);
// machineId and global render with it; conflicts add their own.
func TestUnitsSingle(t *testing.T) {
	for _, tc := range []struct {
		stored string
		fleet  []string
	}{
		{`{"name":"one","apps":[{"image":"a"}]}`, []string{"Conflicts=k2:one:*.service"}},
		{`{"name":"pin","apps":[{"image":"a"}],"machineId":"m1"}`, []string{"MachineID=m1", "Conflicts=k2:pin:*.service"}},
		{`{"name":"all","apps":[{"image":"a"}],"global":true,"conflicts":["db"]}`, []string{"Global=true", "Conflicts=k2:all:*.service", "Conflicts=k2:db:*.service"}},
		{`{"name":"two","replicas":2,"apps":[{"image":"a"}]}`, nil}, // checked below
	} {
		units, err := Units("k2", []byte(tc.stored), bytes.NewReader(bytes.Repeat([]byte{0xab}, 30)))
		if err != nil {
			t.Fatal(err)
		}
		if tc.fleet == nil {
			// maxReplicasPerHost unset: one group per replica.
			if len(units) != 2 || !strings.HasSuffix(units[1].Name, ":ababab:2.service") {
				t.Errorf("%s: units %v", tc.stored, units)
			}
			continue
		}
		var got []string
		for _, o := range units[0].Options {
			if o.Section == "X-Fleet" {
				got = append(got, o.Name+"="+o.Value)
			}
		}
		if len(units) != 1 || !strings.HasSuffix(units[0].Name, ":ababab:1.service") || strings.Join(got, " ") != strings.Join(tc.fleet, " ") {
			t.Errorf("%s: %d units, %s, X-Fleet %v; want X-Fleet %v", tc.stored, len(units), units[0].Name, got, tc.fleet)
		}
	}
}
