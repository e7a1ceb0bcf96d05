package pgtest

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPairReplicates proves the test clusters are real and set up for
// logical replication: a row inserted on the source arrives on the target
// through a publication and a subscription.
func TestPairReplicates(t *testing.T) {
	src, dst := Pair(t)
	if src.Port == dst.Port {
		t.Fatalf("both clusters on port %d", src.Port)
	}
	if got := QueryString(t, src, "postgres", "SHOW wal_level"); got != "logical" {
		t.Fatalf("wal_level = %q, want logical", got)
	}
	Exec(t, src, "postgres",
		"CREATE TABLE t (id int PRIMARY KEY, v text)",
		"CREATE PUBLICATION p FOR TABLE t")
	Exec(t, dst, "postgres",
		"CREATE TABLE t (id int PRIMARY KEY, v text)",
		fmt.Sprintf("CREATE SUBSCRIPTION s CONNECTION '%s' PUBLICATION p", src.URI("postgres")))
	Exec(t, src, "postgres", "INSERT INTO t VALUES (1, 'ferried')")

	conn := Connect(t, dst, "postgres")
	deadline := time.Now().Add(60 * time.Second)
	var v string
	for time.Now().Before(deadline) {
		if err := conn.QueryRow(context.Background(), "SELECT v FROM t WHERE id = 1").Scan(&v); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if v != "ferried" {
		t.Fatalf("row on target = %q, want %q", v, "ferried")
	}
	Exec(t, dst, "postgres", "DROP SUBSCRIPTION s")
}

func TestPasswordAndCleanup(t *testing.T) {
	var dir string
	t.Run("scram", func(t *testing.T) {
		c := Start(t, Source, WithPassword("s3cret pass"))
		dir = c.Dir
		if got := QueryString(t, c, "postgres", "SELECT current_user"); got != "postgres" {
			t.Errorf("current_user = %q, want postgres", got)
		}
		if _, err := os.Stat(c.DataDir()); err != nil {
			t.Fatalf("data directory: %v", err)
		}
		bad := c.URIAs("postgres", "wrong", "postgres")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, bad); err == nil {
			conn.Close(ctx)
			t.Error("a wrong password was accepted")
		}
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cluster directory %s still exists after the test: %v", dir, err)
	}
}
