// Command fleetapi serves fleet's own HTTP API (github.com/coreos/fleet/api,
// v1.0.0) over a fleet registry in etcd, as fleetd does, so that Kaylee's
// --fleet-endpoint path is tested against fleet's real API code.
//
// It is a module of its own because fleet's API needs a prometheus client
// older than the one the main module uses.
//
//	fleetapi --etcd-endpoints http://127.0.0.1:2379 --listen unix:///tmp/fleet.sock
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	etcd "github.com/coreos/etcd/client"
	"github.com/coreos/fleet/api"
	"github.com/coreos/fleet/registry"
)

func main() {
	endpoints := flag.String("etcd-endpoints", "http://127.0.0.1:2379", "comma-separated etcd endpoints (v2 API)")
	prefix := flag.String("fleet-prefix", "/_coreos.com/fleet/", "fleet's etcd key prefix")
	listen := flag.String("listen", "unix:///var/run/fleet.sock", "unix:///path or tcp://host:port")
	flag.Parse()

	c, err := etcd.New(etcd.Config{Endpoints: strings.Split(*endpoints, ","), Transport: etcd.DefaultTransport, HeaderTimeoutPerRequest: 5 * time.Second})
	if err != nil {
		log.Fatalf("fleetapi: etcd client: %v", err)
	}
	reg := registry.NewEtcdRegistry(etcd.NewKeysAPI(c), *prefix)

	var ln net.Listener
	switch {
	case strings.HasPrefix(*listen, "unix://"):
		path := strings.TrimPrefix(*listen, "unix://")
		os.Remove(path)
		ln, err = net.Listen("unix", path)
	case strings.HasPrefix(*listen, "tcp://"):
		ln, err = net.Listen("tcp", strings.TrimPrefix(*listen, "tcp://"))
	default:
		err = fmt.Errorf("--listen %q: use unix:///path or tcp://host:port", *listen)
	}
	if err != nil {
		log.Fatalf("fleetapi: %v", err)
	}
	srv := &http.Server{Handler: api.NewServeMux(reg, 100)}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		srv.Close()
	}()
	fmt.Printf("fleetapi: serving fleet's API on %s\n", ln.Addr())
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Fatalf("fleetapi: %v", err)
	}
}
