package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// sidekickName is the base name the sidekick mode runs under (the sidekick
// image's entrypoint, /rkt-sidekick, is a link to this binary).
const sidekickName = "rkt-sidekick"

// sidekick stands in for the seed's monder.cc/rkt-sidekick: it takes exactly
// that sidekick's arguments
//
//	--cidr 10.5.0.0/16 --interval 10m --expireDir /services --format '$ip:80' /services/countly/ID
//
// finds its own address inside --cidr, fills it into --format, calls the
// pod's main app on localhost at the format's port, and reports what it saw
// on stdout: once at start (retrying every second until the main app
// answers) and then every --interval, a line like
//
//	sidekick: countly/ID: 10.5.2.7:80 → GET http://localhost:80/ 200 testimage v1 on :80
//
// The real sidekick registered the address in etcd under PATH; this one only
// reports, for the tests to read with `podman logs`. An argument that holds a
// flag and its value in one word ("--cidr 10.5.0.0/16", as the seed's YAML
// lists them) is split, and quotes around a value ('$ip:80') are dropped, so
// the seed's list works whether or not a shell took it apart first.
//
// It returns (the exit code, 143 as a process killed by SIGTERM) when ctx
// ends.
func sidekick(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(sidekickName, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cidr := fs.String("cidr", "", "the network whose address to register (required)")
	interval := fs.Duration("interval", 10*time.Minute, "how often to report again")
	expireDir := fs.String("expireDir", "/services", "the key directory PATH is in")
	format := fs.String("format", "$ip:80", "the registered value; $ip is the address inside --cidr")
	if err := fs.Parse(sidekickArgs(args)); err != nil {
		return 2
	}
	if *cidr == "" || fs.NArg() != 1 || *interval <= 0 {
		fmt.Fprintf(stderr, "%s: want --cidr CIDR [--interval D] [--expireDir DIR] [--format F] PATH, got %q\n", sidekickName, args)
		return 2
	}
	_, network, err := net.ParseCIDR(*cidr)
	if err != nil {
		fmt.Fprintf(stderr, "%s: --cidr: %v\n", sidekickName, err)
		return 2
	}
	s := &reporter{
		name:    strings.TrimPrefix(fs.Arg(0), strings.TrimSuffix(*expireDir, "/")+"/"),
		network: network,
		format:  *format,
		out:     stdout,
	}
	ticker := time.NewTicker(time.Second) // until the main app first answers
	defer ticker.Stop()
	answered := false
	for tries := 0; ; tries++ {
		// Until the main app first answers, a failure is reported on the
		// first try and every 30th; after that every report is written.
		if ok := s.report(answered || tries%30 == 0); ok && !answered {
			answered = true
			ticker.Reset(*interval)
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(stderr, "%s: stopped: exiting 143\n", sidekickName)
			return 143
		case <-ticker.C:
		}
	}
}

// sidekickArgs splits "--flag value" words and unquotes values.
func sidekickArgs(args []string) []string {
	var out []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			if f, v, ok := strings.Cut(a, " "); ok {
				out = append(out, f, unquote(strings.TrimSpace(v)))
				continue
			}
		}
		out = append(out, unquote(a))
	}
	return out
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

type reporter struct {
	name    string
	network *net.IPNet
	format  string
	out     io.Writer
}

// report writes one report line, a failed one only when loud; it says
// whether the main app answered.
func (r *reporter) report(loud bool) bool {
	ip, err := addressIn(r.network)
	if err != nil {
		if loud {
			fmt.Fprintf(r.out, "sidekick: %s: %v (retrying)\n", r.name, err)
		}
		return false
	}
	value := strings.ReplaceAll(r.format, "$ip", ip.String())
	port := "80"
	if _, p, err := net.SplitHostPort(value); err == nil {
		port = p
	}
	url := "http://localhost:" + port + "/"
	seen, err := get(url)
	if err != nil {
		if loud {
			fmt.Fprintf(r.out, "sidekick: %s: %s → GET %s %v (retrying)\n", r.name, value, url, err)
		}
		return false
	}
	fmt.Fprintf(r.out, "sidekick: %s: %s → GET %s %s\n", r.name, value, url, seen)
	return true
}

// addressIn is this container's first IPv4 address inside network.
func addressIn(network *net.IPNet) (net.IP, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("listing addresses: %w", err)
	}
	var have []string
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		have = append(have, n.IP.String())
		if ip4 := n.IP.To4(); ip4 != nil && network.Contains(ip4) {
			return ip4, nil
		}
	}
	return nil, fmt.Errorf("no address in %s (have %s)", network, strings.Join(have, ", "))
}

// get fetches url and returns "STATUS first line of the body".
func get(url string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			return "", op // "dial tcp 127.0.0.1:80: connect: connection refused"
		}
		return "", err
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(io.LimitReader(resp.Body, 4096)).ReadString('\n')
	return fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(line)), nil
}
