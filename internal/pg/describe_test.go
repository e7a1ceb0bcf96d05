package pg

import (
	"fmt"
	"net"
	"strings"
	"testing"
)

// TestDescribeDial: a refused dial is said once, with what to check,
// however many attempts pgx wrapped it in.
func TestDescribeDial(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, dialErr := net.Dial("tcp", addr)
	if dialErr == nil {
		t.Skip("something listens on the freed port")
	}
	wrapped := fmt.Errorf("%s (127.0.0.1): dial error: %w; %s (127.0.0.1): dial error: %w", addr, dialErr, addr, dialErr)
	got := Describe(wrapped)
	if want := "nothing listens on " + addr + " (connection refused): is the server running, and is the port right?"; got != want {
		t.Errorf("Describe = %q\nwant %q", got, want)
	}
	if strings.Count(got, addr) != 1 {
		t.Errorf("the address is named %d times", strings.Count(got, addr))
	}
	_, dnsErr := net.LookupHost("no-such-host.invalid")
	if got := Describe(fmt.Errorf("dial: %w", dnsErr)); !strings.HasPrefix(got, "host no-such-host.invalid not found") {
		t.Errorf("Describe of a lookup failure = %q", got)
	}
}
