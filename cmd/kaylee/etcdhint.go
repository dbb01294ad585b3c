package main

import (
	"errors"
	"fmt"

	"github.com/kaylee-gitops/kaylee/store"
)

// etcdHint adds the flags to set to a dial error (store names none): the
// endpoints, a TLS file that does not load, a wrong scheme in
// --etcd-endpoints, and the CA a TLS etcd needs.
func (a *app) etcdHint(err error) error {
	var (
		se *store.SchemeError
		fe *store.TLSFileError
	)
	switch {
	case errors.As(err, &fe) && fe.What == "CA":
		return fmt.Errorf("--etcd-ca: %w", err)
	case errors.As(err, &fe):
		return fmt.Errorf("--etcd-cert/--etcd-key: %w", err)
	case errors.Is(err, store.ErrNoAnswer) && !errors.As(err, &se):
		return fmt.Errorf("%w (check --etcd-endpoints, and that etcd runs there)", err)
	case !errors.As(err, &se):
		return err
	}
	if se.ServerTLS && a.etcd.CA == "" {
		return fmt.Errorf("%w in --etcd-endpoints, and --etcd-ca FILE (the CA that signed its certificate)", err)
	}
	return fmt.Errorf("%w in --etcd-endpoints", err)
}
