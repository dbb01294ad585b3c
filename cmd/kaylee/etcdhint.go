package main

import (
	"errors"
	"fmt"

	"github.com/kaylee-gitops/kaylee/store"
)

// etcdHint adds the flags to set to a dial error that says what to change
// (store names none): a wrong scheme in --etcd-endpoints, and the CA a TLS
// etcd needs.
func (a *app) etcdHint(err error) error {
	var se *store.SchemeError
	if !errors.As(err, &se) {
		return err
	}
	if se.ServerTLS && a.etcd.CA == "" {
		return fmt.Errorf("%w in --etcd-endpoints, and --etcd-ca FILE (the CA that signed its certificate)", err)
	}
	return fmt.Errorf("%w in --etcd-endpoints", err)
}
