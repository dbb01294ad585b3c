package router

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// CertBase is the file name, without .crt or .key, of a domain's
// certificate in a certificate directory: the domain itself, and for a
// wildcard "_wildcard." in place of "*." (*.help.example.com:
// _wildcard.help.example.com.crt and .key), as mkcert names them.
func CertBase(domain string) string {
	if rest, ok := strings.CutPrefix(domain, "*."); ok {
		return "_wildcard." + rest
	}
	return domain
}

// FindCerts returns, for each domain (once, in order of name) whose
// <dir>/<CertBase>.crt and .key both exist, their files (dir made
// absolute). A domain with one file of the two is an error, which names
// it; the others are returned all the same.
func FindCerts(dir string, domains []string) ([]Cert, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("certificate directory %s: %w", dir, err)
	}
	ds := slices.Clone(domains)
	slices.Sort(ds)
	ds = slices.Compact(ds)
	var out []Cert
	var errs []error
	for _, d := range ds {
		c := Cert{Domain: d, CertFile: filepath.Join(abs, CertBase(d)+".crt"), KeyFile: filepath.Join(abs, CertBase(d)+".key")}
		hasCert, err1 := exists(c.CertFile)
		hasKey, err2 := exists(c.KeyFile)
		switch {
		case err1 != nil || err2 != nil:
			errs = append(errs, err1, err2)
		case hasCert && hasKey:
			out = append(out, c)
		case hasCert:
			errs = append(errs, fmt.Errorf("%s: %s has no key %s: serving it over HTTP only", d, c.CertFile, c.KeyFile))
		case hasKey:
			errs = append(errs, fmt.Errorf("%s: %s has no certificate %s: serving it over HTTP only", d, c.KeyFile, c.CertFile))
		}
	}
	return out, errors.Join(errs...)
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("certificate file: %w", err)
	}
}
