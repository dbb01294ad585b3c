package v2units

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	etcd "github.com/coreos/etcd/client"
)

// KeysConfig says how to reach etcd's v2 API.
type KeysConfig struct {
	Endpoints          []string
	Transport          *http.Transport // nil: a transport of its own
	Username, Password string
	RequestTimeout     time.Duration // of each request but watches; 0: 10s
}

// NewKeys returns a client of etcd's v2 keys API.
func NewKeys(c KeysConfig) (etcd.KeysAPI, error) {
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 10 * time.Second
	}
	tr := c.Transport
	if tr == nil {
		tr = &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 4}
	}
	cl, err := etcd.New(etcd.Config{Endpoints: c.Endpoints, Transport: tr, Username: c.Username, Password: c.Password,
		HeaderTimeoutPerRequest: c.RequestTimeout})
	if err != nil {
		return nil, fmt.Errorf("etcd v2 client for %s: %w", strings.Join(c.Endpoints, ","), err)
	}
	return etcd.NewKeysAPI(cl), nil
}

// Listing is what List read.
type Listing struct {
	Writes map[string]Write // by unit name
	Index  uint64           // the etcd index they were read at (to watch after)
	// Missing: the directory does not exist (it holds no value either).
	Missing bool
}

// List returns the values under dir (recursively), read through the raft
// quorum (a lagging member's view would be stale). A missing dir holds
// none. It returns ErrUnavailable when etcd has no v2 API.
func List(ctx context.Context, keys etcd.KeysAPI, dir string) (Listing, error) {
	r, err := keys.Get(ctx, dir, &etcd.GetOptions{Recursive: true, Quorum: true})
	var ee etcd.Error
	if errors.As(err, &ee) && ee.Code == etcd.ErrorCodeKeyNotFound {
		return Listing{Writes: map[string]Write{}, Index: ee.Index, Missing: true}, nil
	}
	if err != nil {
		return Listing{}, v2Error("reading "+dir, err)
	}
	out := map[string]Write{}
	var walk func(n *etcd.Node)
	walk = func(n *etcd.Node) {
		if n.Dir {
			for _, c := range n.Nodes {
				walk(c)
			}
			return
		}
		name := n.Key[strings.LastIndex(n.Key, "/")+1:]
		// Two keys of one name (a/x and b/x): the newer wins.
		if old, ok := out[name]; !ok || old.Index < n.ModifiedIndex {
			out[name] = Write{Name: name, Value: []byte(n.Value), Index: n.ModifiedIndex}
		}
	}
	if r.Node != nil {
		walk(r.Node)
	}
	return Listing{Writes: out, Index: r.Index}, nil
}

// v2Error wraps err; an answer that is not the v2 API's (etcd answers 404
// with a plain text page without it) is ErrUnavailable.
func v2Error(what string, err error) error {
	var ue *url.Error
	switch {
	case errors.Is(err, etcd.ErrInvalidJSON):
		return fmt.Errorf("%s: %w", what, ErrUnavailable)
	case errors.As(err, &ue) && errors.Is(ue.Err, etcd.ErrInvalidJSON):
		return fmt.Errorf("%s: %w", what, ErrUnavailable)
	}
	return fmt.Errorf("etcd v2: %s: %w", what, err)
}

// sorted is the writes by name.
func sorted(m map[string]Write) []Write {
	out := make([]Write, 0, len(m))
	for _, w := range m {
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b Write) int { return strings.Compare(a.Name, b.Name) })
	return out
}
