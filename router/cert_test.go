package router

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate for domain into dir, named as
// FindCerts looks for it, and returns the certificate.
func writeCert(t *testing.T, dir, domain string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: domain},
		DNSNames:     []string{domain},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, CertBase(domain))
	if err := os.WriteFile(base+".crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(base+".key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFindCerts(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir, "a.com")
	writeCert(t, dir, "*.help.a.com")
	writeCert(t, dir, "half.com")
	if err := os.Remove(filepath.Join(dir, "half.com.key")); err != nil {
		t.Fatal(err)
	}
	got, err := FindCerts(dir, []string{"half.com", "*.help.a.com", "b.com", "a.com", "a.com"})
	want := []Cert{
		{Domain: "*.help.a.com", CertFile: filepath.Join(dir, "_wildcard.help.a.com.crt"), KeyFile: filepath.Join(dir, "_wildcard.help.a.com.key")},
		{Domain: "a.com", CertFile: filepath.Join(dir, "a.com.crt"), KeyFile: filepath.Join(dir, "a.com.key")},
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("FindCerts = %+v\nwant %+v", got, want)
	}
	wantErr := "half.com: " + filepath.Join(dir, "half.com.crt") + " has no key " + filepath.Join(dir, "half.com.key") + ": serving it over HTTP only"
	if err == nil || err.Error() != wantErr {
		t.Errorf("FindCerts error = %v\nwant %s", err, wantErr)
	}
}
