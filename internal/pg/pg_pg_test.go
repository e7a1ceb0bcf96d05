package pg

import (
	"context"
	"strings"
	"testing"

	"github.com/pgferry/pgferry/internal/pgtest"
)

// TestPreferredTLSRefusedOnce: under sslmode=prefer a server without TLS
// costs pgx a second TCP connection (and the server a second backend) per
// connect; once refused, the endpoint dials plain at once. Required TLS
// never falls back.
func TestPreferredTLSRefusedOnce(t *testing.T) {
	c := pgtest.Start(t, pgtest.Source)
	ctx := context.Background()

	e, err := NewEndpoint("source", strings.Replace(c.URI("postgres"), "sslmode=disable", "sslmode=prefer", 1))
	if err != nil {
		t.Fatal(err)
	}
	if e.config.TLSConfig == nil || len(e.config.Fallbacks) != 1 {
		t.Fatalf("sslmode=prefer should try TLS first, then plain: tls %v, fallbacks %d", e.config.TLSConfig != nil, len(e.config.Fallbacks))
	}
	for i := range 3 {
		conn, err := e.Connect(ctx, "", Options{})
		if err != nil {
			t.Fatalf("connect %d: %v", i, err)
		}
		var one int
		if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
			t.Fatalf("query on connection %d: %v", i, err)
		}
		conn.Close(ctx)
		if e.config.TLSConfig != nil || len(e.config.Fallbacks) != 0 {
			t.Fatalf("after the server refused TLS, the endpoint still dials a TLS attempt first")
		}
	}
	raw, err := e.ConnectRaw(ctx, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	raw.Close(ctx)

	// Required TLS has no plain fallback: it keeps failing, clearly.
	req, err := NewEndpoint("target", strings.Replace(c.URI("postgres"), "sslmode=disable", "sslmode=require", 1))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		_, err := req.Connect(ctx, "", Options{})
		if err == nil || !strings.Contains(err.Error(), "TLS") {
			t.Fatalf("sslmode=require against a server without TLS: %v", err)
		}
	}
	if req.config.TLSConfig == nil {
		t.Fatal("sslmode=require lost its TLS configuration")
	}
}
