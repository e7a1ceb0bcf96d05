package main

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pghaul/pghaul/internal/pgtest"
)

// stallingProxy forwards TCP connections to a server. While stalling is
// on, a connection that has passed more than after bytes from the server
// stops forwarding them, and keeps the connection open: a server alive
// but silent, as behind a stopped proxy.
type stallingProxy struct {
	addr     string
	stalling atomic.Bool
	after    int64
}

func startStallingProxy(t *testing.T, server string, after int64) *stallingProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallingProxy{addr: l.Addr().String(), after: after}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			client, err := l.Accept()
			if err != nil {
				return
			}
			upstream, err := net.Dial("tcp", server)
			if err != nil {
				client.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, client, upstream)
			mu.Unlock()
			wg.Go(func() { io.Copy(upstream, client); upstream.Close() })
			wg.Go(func() { p.forward(client, upstream); client.Close() })
		}
	})
	return p
}

// forward copies the server's bytes to the client until the stall.
func (p *stallingProxy) forward(client, upstream net.Conn) {
	buf := make([]byte, 32<<10)
	var passed int64
	for {
		n, err := upstream.Read(buf)
		if n > 0 {
			if p.stalling.Load() && passed > p.after {
				// Silent from here on: read nothing more, forward nothing,
				// until the test closes the connections.
				var block [1]byte
				client.Read(block[:]) // returns when the test closes it
				return
			}
			if _, err := client.Write(buf[:n]); err != nil {
				return
			}
			passed += int64(n)
		}
		if err != nil {
			return
		}
	}
}

// TestCopyStallFails: a source that goes silent mid-COPY fails the copy
// within parallel.stall_timeout, naming the source, instead of hanging;
// the rerun copies again and ends equal.
func TestCopyStallFails(t *testing.T) {
	t.Parallel()
	src, dst := pgtest.Pair(t)
	pgtest.Exec(t, src, "postgres", "CREATE DATABASE shop")
	pgtest.Exec(t, src, "shop", "CREATE TABLE big (id int PRIMARY KEY, pad text)",
		"INSERT INTO big SELECT g, repeat('x', 200) FROM generate_series(1, 100000) g")
	proxy := startStallingProxy(t, fmt.Sprintf("127.0.0.1:%d", src.Port), 4<<20)
	proxy.stalling.Store(true)
	source := strings.Replace(src.URI("postgres"), fmt.Sprintf("127.0.0.1:%d", src.Port), proxy.addr, 1)
	cfg := writeConfig(t, source, dst.URI("postgres"), "method: dump\ndatabases: {include: [shop]}\nparallel: {tables: 1, stall_timeout: 2s}\n")
	r := runBin(t, nil, "apply", "-c", cfg)
	if r.code != 1 || !strings.Contains(r.stderr, "the source sent nothing for 2s during the copy (parallel.stall_timeout)") {
		t.Fatalf("apply through a stalling source: exit %d, want 1 and the stall named\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	proxy.stalling.Store(false)
	if r := runBin(t, nil, "apply", "-c", cfg); r.code != 0 {
		t.Fatalf("rerun: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	assertSameRows(t, src, dst, "shop")
}
