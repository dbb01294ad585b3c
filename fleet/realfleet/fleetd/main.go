// Command fleetd is fleet v1.0.0's real server (github.com/coreos/fleet/server:
// agent, engine, heartbeat, unit-state publisher and HTTP API over real
// systemd) with a flag parser of its own, for the machines of
// scripts/real-cluster.
//
// It is a module of its own: fleet's server needs old dbus, go-systemd and
// prometheus packages that the main module must not take, and fleetd's own
// main needs rakyll/globalconf, which the module proxy does not serve.
//
//	fleetd --etcd-servers http://127.0.0.1:2379 --public-ip 127.0.10.1 --metadata az=a,role=worker
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/coreos/fleet/config"
	"github.com/coreos/fleet/log"
	"github.com/coreos/fleet/registry"
	"github.com/coreos/fleet/server"
	"github.com/coreos/fleet/version"
)

func main() {
	var cfg config.Config
	var etcdServers, listen string
	flag.StringVar(&etcdServers, "etcd-servers", "http://127.0.0.1:2379", "comma-separated etcd client URLs (the v2 API must be on)")
	flag.StringVar(&cfg.EtcdKeyPrefix, "etcd-key-prefix", registry.DefaultKeyPrefix, "fleet's keyspace in etcd")
	flag.Float64Var(&cfg.EtcdRequestTimeout, "etcd-request-timeout", 1.0, "seconds one etcd request may take (0: no limit)")
	flag.Float64Var(&cfg.EngineReconcileInterval, "engine-reconcile-interval", 2.0, "seconds between the engine's reconciles")
	flag.StringVar(&cfg.PublicIP, "public-ip", "", "the IP address this machine publishes")
	flag.StringVar(&cfg.RawMetadata, "metadata", "", "machine metadata, key=value,key=value")
	flag.StringVar(&cfg.AgentTTL, "agent-ttl", "30s", "TTL of this machine's presence and unit states in etcd")
	flag.StringVar(&cfg.UnitsDirectory, "units-directory", "/run/fleet/units/", "where unit files are written for systemd")
	flag.IntVar(&cfg.TokenLimit, "token-limit", 100, "entries per page of API answers")
	flag.StringVar(&listen, "listen", "unix:///var/run/fleet.sock", "comma-separated API listeners: unix:///path or tcp://host:port")
	verbose := flag.Bool("verbose", false, "debug logging")
	printVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *printVersion {
		fmt.Println("fleetd version", version.Version)
		return
	}
	cfg.EtcdServers = strings.Split(etcdServers, ",")
	if *verbose {
		cfg.Verbosity = 1
		log.EnableDebug()
	}

	var listeners []net.Listener
	for _, l := range strings.Split(listen, ",") {
		ln, err := listenOn(l)
		if err != nil {
			fmt.Fprintf(os.Stderr, "fleetd: --listen %s: %v\n", l, err)
			os.Exit(2)
		}
		listeners = append(listeners, ln)
	}

	log.Infof("Starting fleetd version %v", version.Version)
	srv, err := server.New(cfg, listeners)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fleetd: %v\n", err)
		os.Exit(1)
	}
	srv.Run()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	log.Infof("Gracefully shutting down")
	srv.Kill()
	srv.Purge()
}

func listenOn(addr string) (net.Listener, error) {
	switch {
	case strings.HasPrefix(addr, "unix://"):
		path := strings.TrimPrefix(addr, "unix://")
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		return net.Listen("unix", path)
	case strings.HasPrefix(addr, "tcp://"):
		return net.Listen("tcp", strings.TrimPrefix(addr, "tcp://"))
	}
	return nil, fmt.Errorf("use unix:///path or tcp://host:port")
}
