package pgtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pghaul/pghaul/internal/cluster"
)

// TLS turns TLS on for c with a certificate for localhost and 127.0.0.1
// signed by a CA made for it, and returns that CA's certificate file. The
// file lies in c's directory, readable by the server's OS user, so a
// subscription of another test cluster on this machine can name it.
func TLS(t testing.TB, c *cluster.Cluster) (caFile string) {
	t.Helper()
	ca, caKey := newCA(t, "pghaul test CA")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(c.Dir, "root.crt")
	for _, f := range []struct {
		name, pem string
		mode      uint32
	}{
		{"server.crt", pemOf("CERTIFICATE", der), 0o644},
		{"server.key", pemOf("EC PRIVATE KEY", keyDER), 0o600},
		{caFile, pemOf("CERTIFICATE", ca.Raw), 0o644},
	} {
		if err := c.WriteFile(f.name, f.pem, os.FileMode(f.mode)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Set(map[string]string{"ssl": "on", "ssl_cert_file": "'server.crt'", "ssl_key_file": "'server.key'"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	return caFile
}

// OtherCA returns the certificate file of a CA that signed nothing, in c's
// directory like TLS's: the wrong CA for every test server.
func OtherCA(t testing.TB, c *cluster.Cluster) string {
	t.Helper()
	ca, _ := newCA(t, "pghaul unrelated CA")
	f := filepath.Join(c.Dir, "other-root.crt")
	if err := c.WriteFile(f, pemOf("CERTIFICATE", ca.Raw), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func newCA(t testing.TB, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func pemOf(kind string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}))
}
