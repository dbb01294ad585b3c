package realfleet_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kaylee-gitops/kaylee/deploy"
	"github.com/kaylee-gitops/kaylee/fleet/realfleet"
	"github.com/kaylee-gitops/kaylee/store"
)

// secretValue is a password with what a shell, systemd or an
// environment file would read as syntax (quotes, backslash, $HOME, a
// backtick, #, =, spaces at both ends, a newline, UTF-8) around core, a
// random word that a leak shows whatever it escaped.
func secretValue(t *testing.T) (value, core string) {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	core = "k28core" + hex.EncodeToString(b)
	return `  pa"ss'w\o $HOME ` + "`id`" + ` #x =y ` + core + "\nline 2: é  ", core
}

// encryptArmored is what kaylee secret encrypt writes: value encrypted
// to the recipients, ASCII-armored.
func encryptArmored(t *testing.T, value string, to ...age.Recipient) string {
	t.Helper()
	var buf bytes.Buffer
	aw := armor.NewWriter(&buf)
	w, err := age.Encrypt(aw, to...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, value); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// secretUnit is a unit of the test image, on the machines with metadata
// machine, whose DB_PASSWORD is the armored secret (recipient db); the
// image logs the variable's SHA-256 at start and answers it on /envhash.
func secretUnit(name string, replicas int, machine, armored string) string {
	return webUnit(name, replicas, 1, "v1", "--env-hash=DB_PASSWORD") +
		"machine: [" + machine + "]\nenv:\n- name: DB_PASSWORD\n  recipients: [db]\n  secret: |\n    " +
		strings.ReplaceAll(strings.TrimRight(armored, "\n"), "\n", "\n    ") + "\n"
}

func sum(v string) string {
	s := sha256.Sum256([]byte(v))
	return hex.EncodeToString(s[:])
}

// identityFiles holds what the running tests put in each machine's
// identity file (by path): tests that run at once each add their
// identities and take them away again when they end, and the file holds
// all that are there, so that none loses the identity it put there.
var identityFiles = struct {
	sync.Mutex
	ids map[string][]testIdentity
}{ids: map[string][]testIdentity{}}

type testIdentity struct {
	test string
	id   *age.X25519Identity
}

// writeIdentity adds age identities to machine m's identity file, where
// the operator puts it (deploy.SecretIdentityFile, 0600 in a 0700
// directory), beside those of the other tests running, and takes them
// away when the test ends (the file goes with the last).
func (e *env) writeIdentity(m realfleet.Machine, ids ...*age.X25519Identity) {
	e.t.Helper()
	p := filepath.Join(e.c.Root(m), deploy.SecretIdentityFile)
	identityFiles.Lock()
	defer identityFiles.Unlock()
	for _, id := range ids {
		identityFiles.ids[p] = append(identityFiles.ids[p], testIdentity{e.t.Name(), id})
	}
	if err := writeIdentityFile(p, identityFiles.ids[p]); err != nil {
		e.t.Fatalf("%s: %v", m.Name, err)
	}
	e.t.Cleanup(func() {
		identityFiles.Lock()
		defer identityFiles.Unlock()
		var keep []testIdentity
		for _, ti := range identityFiles.ids[p] {
			if ti.test != e.t.Name() {
				keep = append(keep, ti)
			}
		}
		identityFiles.ids[p] = keep
		if len(keep) == 0 {
			_ = os.Remove(p)
			return
		}
		if err := writeIdentityFile(p, keep); err != nil {
			e.t.Errorf("%s: %v", m.Name, err)
		}
	})
}

// writeIdentityFile replaces the identity file at p with the identities,
// at once (a rename): a replica's decrypt step reads the whole old file or
// the whole new one.
func writeIdentityFile(p string, ids []testIdentity) error {
	var b strings.Builder
	for _, ti := range ids {
		fmt.Fprintf(&b, "# public key: %s\n%s\n", ti.id.Recipient(), ti.id)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	tmp := p + ".new"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// TestRealSecrets: a unit's DB_PASSWORD, encrypted with age to identity
// A (the machines with role=worker hold it; the edge machine holds only
// B), reaches the process byte for byte on every replica, from a 0600
// file in a 0700 directory under /run/kaylee/secrets that lives only
// until the main process started (none is left while it runs, nor after
// kaylee rm); the clear value (and its base64) is nowhere in
// etcd (Kaylee's keys and fleet's registry), the fleet unit files, the
// machines' journals, kaylee status/events/history or the
// notifications. A unit on the edge machine fails its rollout, and its
// status carries the machine's kaylee-secret: line. A new ciphertext
// rolls the unit out, and the process sees the new value.
func TestRealSecrets(t *testing.T) {
	// Exclusive (no t.Parallel, see newEnv): it restarts kaylee-evidence on
	// every machine (with its own prefix), empties every machine's secrets
	// directory, and searches every journal and every etcd key.
	e := newEnv(t, "se")
	e.installEvidence()
	rcv := newReceiver(t)
	cfg := filepath.Join(e.dir, "server.yaml")
	if err := os.WriteFile(cfg, []byte("notifications:\n- url: "+rcv.url+"\n  events: [rollout]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.server("--config", cfg, "--rollout-timeout", "5m")
	ctx := context.Background()

	a, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	b, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	machines, err := e.c.API(t).Machines()
	if err != nil {
		t.Fatal(err)
	}
	role := map[string]string{}
	for _, m := range machines {
		role[m.ID] = m.Metadata["role"]
	}
	var workers []realfleet.Machine
	var edge realfleet.Machine
	for _, m := range e.c.Machines {
		switch role[m.ID] {
		case "worker":
			e.writeIdentity(m, b, a) // a file with several keys: the machine's and its group's
			workers = append(workers, m)
		case "edge":
			e.writeIdentity(m, b)
			edge = m
		}
	}
	if len(workers) < 2 || edge.ID == "" {
		t.Fatalf("want 2 machines with role=worker and one with role=edge, fleet has %v", role)
	}

	// A unit on the workers: both replicas decrypt it. Each machine
	// starts as after a boot (no secrets directory), and watches for the
	// decrypted file, which lives only from its replica's decrypt step
	// to the start of its main process.
	watch := map[string]<-chan string{}
	for _, m := range e.c.Machines {
		if _, err := e.c.Exec(ctx, m, "rm", "-rf", deploy.SecretsDir); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range workers {
		watch[m.Name] = e.watchSecretFile(m, time.Minute)
	}
	clear1, core1 := secretValue(t)
	e.must("run", "--wait", "--timeout", "3m", e.unit("db", secretUnit("db", 2, "role=worker", encryptArmored(t, clear1, a.Recipient()))))
	// The poller can miss the file's short life on a loaded machine
	// (CI runs the other tiers beside this one): a machine where it saw
	// nothing is watched again through the second rollout below.
	checkFile := func(m realfleet.Machine, out string) {
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "600 root "+deploy.SecretsDir+"/se_db_") || !strings.HasSuffix(lines[0], "/DB_PASSWORD") ||
			!strings.HasPrefix(lines[1], "700 root "+deploy.SecretsDir+"/se_db_") || !strings.HasSuffix(lines[2], " root "+deploy.SecretsDir) {
			t.Errorf("%s: the decrypted file while it lived (mode, owner, path of it, its directory, the secrets directory):\n%s\nwant 600 root, 700 root, root", m.Name, out)
		}
		t.Logf("%s: the decrypted file while it lived:\n%s", m.Name, out)
	}
	var missed []realfleet.Machine
	for _, m := range workers {
		var out string
		select {
		case out = <-watch[m.Name]:
		case <-time.After(time.Minute):
		}
		if strings.TrimSpace(out) == "" {
			t.Logf("%s: the poller saw no decrypted file in the first rollout; watching again in the second", m.Name)
			missed = append(missed, m)
			continue
		}
		checkFile(m, out)
	}
	st1, _ := e.status("db")
	cs := e.waitContainers("db", 2, "v1", 30*time.Second)
	if pm := perMachine(cs); len(pm) != 2 {
		t.Errorf("replicas of db on %v, want one on each worker", pm)
	}
	e.checkEnvHash(cs, clear1)
	e.checkNoSecretFiles(cs)

	// Rotation: a new ciphertext (of a new value) is a new spec, rolled
	// out; the processes see the new value.
	clear2, core2 := secretValue(t)
	for _, m := range missed {
		watch[m.Name] = e.watchSecretFile(m, time.Minute)
	}
	e.must("run", "--wait", "--timeout", "3m", e.unit("db", secretUnit("db", 2, "role=worker", encryptArmored(t, clear2, a.Recipient()))))
	for _, m := range missed {
		var out string
		select {
		case out = <-watch[m.Name]:
		case <-time.After(time.Minute):
		}
		checkFile(m, out)
	}
	st2, _ := e.status("db")
	if st2.SpecHash == st1.SpecHash || st2.Phase != store.PhaseRunning {
		t.Errorf("after a new ciphertext: spec %s (was %s), phase %s", st2.SpecHash, st1.SpecHash, st2.Phase)
	}
	cs = e.waitContainers("db", 2, "v1", 30*time.Second)
	for _, c := range cs {
		if !strings.Contains(c.Name, st2.SpecHash) {
			t.Errorf("container %s is not of the new spec %s", c.Name, st2.SpecHash)
		}
	}
	e.checkEnvHash(cs, clear2)
	e.checkNoSecretFiles(cs)

	// A unit on the edge machine, which has no identity of the secret's
	// recipients: its start fails, and the rollout's failure carries the
	// machine's line.
	e.must("run", e.unit("dbedge", secretUnit("dbedge", 1, "role=edge", encryptArmored(t, clear1, a.Recipient()))))
	stE, took := e.waitPhase("dbedge", "failed", 3*time.Minute)
	t.Logf("dbedge failed after %s: %s", took.Round(100*time.Millisecond), stE.Message)
	const want = "kaylee-secret: DB_PASSWORD: not decrypted with /etc/kaylee/age/keys.txt: age: error: no identity matched any of the recipients"
	e.waitFor("dbedge's evidence with the kaylee-secret line", time.Minute, func() (bool, string) {
		stE, _ = e.status("dbedge")
		return stE.Evidence != nil && strings.Contains(strings.Join(stE.Evidence.Journal, "\n"), want), fmt.Sprintf("%+v", stE.Evidence)
	})
	out := e.must("status", "dbedge")
	t.Logf("kaylee status dbedge:\n%s", out)
	if !strings.Contains(out, want) || stE.Evidence.Machine != edge.ID {
		t.Errorf("kaylee status dbedge lacks %q (on %s)", want, edge.Name)
	}

	// Nowhere in clear: each value's random core (whatever escaped it)
	// and each value's base64.
	leaks := []string{core1, core2}
	for _, v := range []string{clear1, clear2} {
		leaks = append(leaks, base64.StdEncoding.EncodeToString([]byte(v)), base64.RawURLEncoding.EncodeToString([]byte(v)))
	}
	where := map[string]string{
		"kaylee status -o json":  e.must("status", "-o", "json"),
		"kaylee status db":       e.must("status", "db"),
		"kaylee events":          e.must("events"),
		"kaylee events -o json":  e.must("events", "-o", "json"),
		"kaylee history db":      e.must("history", "db"),
		"kaylee history -o json": e.must("history", "db", "-o", "json"),
		"etcd (v3, every key)":   e.etcdDump(),
		"fleet's registry (etcd v2 " + "/_coreos.com/fleet/)": e.fleetRegistryDump(),
	}
	rcv.mu.Lock()
	nb, _ := json.Marshal(rcv.got)
	rcv.mu.Unlock()
	where["notifications"] = string(nb)
	for _, m := range e.c.Machines {
		j, err := e.c.Exec(ctx, m, "journalctl", "-o", "cat", "--no-pager")
		if err != nil {
			t.Fatalf("%s: journalctl: %v", m.Name, err)
		}
		where[m.Name+"'s journal"] = j
		// Unit files as fleet wrote them and systemd has them, and the
		// evidence the machine publishes (files' names only, on a match).
		f, _ := e.c.Exec(ctx, m, "sh", "-c", "cat /run/fleet/units/* /run/kaylee/evidence/* 2>/dev/null; systemctl cat 'se:*' 2>/dev/null")
		where[m.Name+"'s unit files and evidence"] = f
	}
	// What people read shows a secret, never its ciphertext (noise, and
	// not theirs to copy): the API and etcd carry it.
	for _, place := range []string{"kaylee status db", "kaylee events", "kaylee history db", "notifications"} {
		if strings.Contains(where[place], "BEGIN AGE ENCRYPTED FILE") || strings.Contains(where[place], "YWdlLWVuY3J5cHRpb24ub3JnL3Yx") {
			t.Errorf("%s shows a secret's ciphertext:\n%s", place, tail(where[place], 40))
		}
	}
	t.Logf("kaylee events:\n%s\nkaylee history db:\n%s", tail(where["kaylee events"], 30), where["kaylee history db"])
	for place, text := range where {
		if text == "" {
			t.Errorf("%s: nothing to search", place)
		}
		for _, l := range leaks {
			if strings.Contains(text, l) {
				t.Errorf("%s holds a secret value in clear (%.12s…)", place, l)
			}
		}
	}

	// kaylee rm: the replicas stop, and their decrypted files go.
	e.must("rm", "db", "dbedge")
	e.waitFor("db's containers gone", 2*time.Minute, func() (bool, string) {
		left := e.containers("db")
		return len(left) == 0, fmt.Sprint(left)
	})
	for _, m := range e.c.Machines {
		e.waitFor("no decrypted file left on "+m.Name, time.Minute, func() (bool, string) {
			out, _ := e.c.Exec(ctx, m, "sh", "-c", "ls -A "+deploy.SecretsDir+" 2>/dev/null | grep '^se_' || true")
			return strings.TrimSpace(out) == "", out
		})
	}
}

// watchSecretFile stats, in machine m, the first decrypted DB_PASSWORD
// of this env's units that appears within timeout, then its directory and
// the secrets directory ("%a %U %n" each), or returns "" when it missed
// them. The file lives from the decrypt step to the main process's start
// (the docker rm -f in between: a fraction of a second), shorter on a
// loaded machine than a fork of stat. So the loop in the machine runs
// only bash builtins: it opens the directory when it appears (made first,
// mode 0700 at its mkdir), then the file, and stats what it holds open
// (/proc/self/fd) once it has both, whether or not the replica has
// removed them by then.
func (e *env) watchSecretFile(m realfleet.Machine, timeout time.Duration) <-chan string {
	ch := make(chan string, 1)
	script := fmt.Sprintf(`S=%[1]s; d=; f=
exec 2>/dev/null
until [ -n "$f" ]; do
  if [ -n "$d" ]; then
    if [ -e "$d/DB_PASSWORD" ] && exec 3<"$d/DB_PASSWORD"; then f=$d/DB_PASSWORD; elif [ ! -d "$d" ]; then d=; exec 4<&-; fi
  else
    for x in "$S"/%[2]s_*; do [ -d "$x" ] && exec 4<"$x" && d=$x && break; done
  fi
done
echo "$(stat -L -c "%%a %%U" /proc/self/fd/3) $f"
echo "$(stat -L -c "%%a %%U" /proc/self/fd/4) $d"
stat -c "%%a %%U %%n" "$S"`, deploy.SecretsDir, e.unitPrefix)
	go func() {
		out, _ := e.c.Exec(context.Background(), m, "timeout", fmt.Sprint(int(timeout.Seconds())), "bash", "-c", script)
		ch <- out
	}()
	return ch
}

// checkNoSecretFiles: on the machine of each running replica, the
// decrypted file is gone (systemd read it before it started the main
// process, and the replica's ExecStartPost removed it).
func (e *env) checkNoSecretFiles(cs []realfleet.Container) {
	e.t.Helper()
	for _, c := range cs {
		m, _ := e.c.Machine(c.Machine)
		out, err := e.c.Exec(context.Background(), m, "ls", "-A", deploy.SecretsDir)
		if mine := e.ownEntries(out); err != nil || mine != "" {
			e.t.Errorf("%s, running %s: %s holds %q (%v), want nothing of %s: a decrypted file outlived the start", m.Name, c.Name, deploy.SecretsDir, mine, err, e.unitPrefix)
		}
	}
}

// ownEntries is the lines of an ls of the secrets directory that are this
// env's replicas' (<unit prefix>_…): other tests' units decrypt beside it.
func (e *env) ownEntries(ls string) string {
	var mine []string
	for _, name := range strings.Fields(ls) {
		if strings.HasPrefix(name, e.unitPrefix+"_") {
			mine = append(mine, name)
		}
	}
	return strings.Join(mine, " ")
}

// checkEnvHash: each container's process has the value (its SHA-256, so
// that a failure never prints it), and logged the same at start.
func (e *env) checkEnvHash(cs []realfleet.Container, clear string) {
	e.t.Helper()
	for _, c := range cs {
		code, got, err := c.Get(context.Background(), "/envhash?name=DB_PASSWORD")
		if err != nil || code != 200 || got != sum(clear) {
			e.t.Errorf("%s: GET /envhash?name=DB_PASSWORD = %d %q %v, want the value's SHA-256 %s", c.Name, code, got, err, sum(clear))
		}
	}
}

// etcdDump is every key and value in etcd's v3 store.
func (e *env) etcdDump() string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := store.Dial(ctx, store.DialConfig{Endpoints: []string{e.c.Endpoint}})
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	resp, err := c.Get(ctx, "", clientv3.WithPrefix())
	if err != nil {
		e.t.Fatal(err)
	}
	var b strings.Builder
	for _, kv := range resp.Kvs {
		fmt.Fprintf(&b, "%s=%s\n", kv.Key, kv.Value)
	}
	return b.String()
}

// fleetRegistryDump is fleet's registry in etcd's v2 store, recursively.
func (e *env) fleetRegistryDump() string {
	e.t.Helper()
	code, body, err := realfleet.GetURL(context.Background(), e.c.Endpoint+"/v2/keys/_coreos.com/fleet/?recursive=true", 10*time.Second)
	if err != nil || code != 200 {
		e.t.Fatalf("fleet's registry: %d %v", code, err)
	}
	return body
}

// TestRealSecretsPodman: with engine podman the secret reaches the pod's
// app too (podman create -e reads it in an ExecStartPre after the
// decrypt step), and no decrypted file is left while the pod runs.
func TestRealSecretsPodman(t *testing.T) {
	shareable(t) // t.Parallel, longest first: see newEnv
	e := newEnv(t, "sq")
	e.server()
	ctx := context.Background()
	image, err := e.c.PushImage(ctx, realfleet.CountlyImage, "countly:sp", "/testimage", "--listen", ":80", "--env-hash", "DB_PASSWORD")
	if err != nil {
		t.Fatal(err)
	}
	a, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range e.c.Machines {
		e.writeIdentity(m, a)
	}
	clear, core := secretValue(t)
	armored := encryptArmored(t, clear, a.Recipient())
	e.must("run", "--wait", "--timeout", "3m", e.unit("pdb", "name: pdb\nengine: podman\nreplicas: 1\napps:\n- image: "+image+
		"\nenv:\n- name: DB_PASSWORD\n  recipients: [db]\n  secret: |\n    "+strings.ReplaceAll(strings.TrimRight(armored, "\n"), "\n", "\n    ")+"\n"))
	st, _ := e.status("pdb")
	if len(st.Units) != 1 {
		t.Fatalf("pdb's fleet units: %+v", st.Units)
	}
	m, ok := e.c.Machine(st.Units[0].MachineID)
	if !ok {
		t.Fatalf("pdb runs on no machine of the cluster: %+v", st.Units[0])
	}
	pod := instanceOf(st.Units[0].Name)
	ips, err := e.c.PodIPs(ctx, m, pod)
	if err != nil || len(ips) != 1 {
		t.Fatalf("pod %s on %s: addresses %q %v", pod, m.Name, ips, err)
	}
	code, got, err := realfleet.GetURL(ctx, "http://"+ips[0]+":80/envhash?name=DB_PASSWORD", 3*time.Second)
	if err != nil || code != 200 || got != sum(clear) {
		t.Errorf("pod %s: GET /envhash?name=DB_PASSWORD = %d %q %v, want the value's SHA-256 %s", pod, code, got, err, sum(clear))
	}
	if out, err := e.c.Exec(ctx, m, "ls", "-A", deploy.SecretsDir); err != nil || e.ownEntries(out) != "" {
		t.Errorf("%s, running pod %s: %s holds %q (%v), want nothing of %s", m.Name, pod, deploy.SecretsDir, e.ownEntries(out), err, e.unitPrefix)
	}
	// The app's log line (its journal, through podman) has the hash, and
	// no journal line the value.
	j, err := e.c.Exec(ctx, m, "journalctl", "-o", "cat", "--no-pager")
	if err != nil || !strings.Contains(j, "sha256(DB_PASSWORD)="+sum(clear)) || strings.Contains(j, core) {
		t.Errorf("%s's journal: %v; has the app's sha256(DB_PASSWORD)= line: %v; holds the value in clear: %v", m.Name, err,
			strings.Contains(j, "sha256(DB_PASSWORD)="+sum(clear)), strings.Contains(j, core))
	}
	e.must("rm", "pdb")
	e.waitFor("pdb's pod gone", 2*time.Minute, func() (bool, string) {
		out, _ := e.c.Podman(ctx, m, "pod", "ps", "-q", "--filter", "name="+pod)
		return strings.TrimSpace(out) == "", out
	})
}

// TestRealSecretsLong: a secret longer than a unit line (a TLS key:
// its ciphertext is split over several ExecStartPre steps) reaches the
// process byte for byte, and leaves no file behind.
func TestRealSecretsLong(t *testing.T) {
	shareable(t) // t.Parallel, longest first: see newEnv
	e := newEnv(t, "sl")
	e.server()
	ctx := context.Background()
	a, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range e.c.Machines {
		e.writeIdentity(m, a)
	}
	_, core := secretValue(t)
	raw := make([]byte, 2400)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString(raw)
	var key strings.Builder
	key.WriteString("-----BEGIN PRIVATE KEY-----\n" + core + "\n")
	for len(b64) > 64 {
		key.WriteString(b64[:64] + "\n")
		b64 = b64[64:]
	}
	key.WriteString(b64 + "\n-----END PRIVATE KEY-----")
	clear := key.String()
	armored := encryptArmored(t, clear, a.Recipient())
	unit := webUnit("tls", 1, 1, "v1", "--env-hash=TLS_KEY") + "env:\n- name: TLS_KEY\n  recipients: [db]\n  secret: |\n    " +
		strings.ReplaceAll(strings.TrimRight(armored, "\n"), "\n", "\n    ") + "\n"
	rendered := e.must("render", "--unit-prefix", "sl", e.unit("tls", unit))
	t.Logf("TLS_KEY: %d bytes, %d armored; the unit has %d kaylee-secret-part steps", len(clear), len(armored), strings.Count(rendered, "' kaylee-secret-part "))
	if !strings.Contains(rendered, "' kaylee-secret-part ") {
		t.Errorf("a %d-byte secret is rendered without parts", len(armored))
	}
	e.must("run", "--wait", "--timeout", "3m", e.unit("tls", unit))
	cs := e.waitContainers("tls", 1, "v1", 30*time.Second)
	code, got, err := cs[0].Get(ctx, "/envhash?name=TLS_KEY")
	if err != nil || code != 200 || got != sum(clear) {
		t.Errorf("%s: GET /envhash?name=TLS_KEY = %d %q %v, want the value's SHA-256 %s", cs[0].Name, code, got, err, sum(clear))
	}
	e.checkNoSecretFiles(cs)
	m, _ := e.c.Machine(cs[0].Machine)
	if j, _ := e.c.Exec(ctx, m, "journalctl", "-o", "cat", "--no-pager"); strings.Contains(j, core) {
		t.Errorf("%s's journal holds the secret value in clear", m.Name)
	}
}
