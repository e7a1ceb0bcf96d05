package pg

import "testing"

func TestLocalAddress(t *testing.T) {
	tests := []struct {
		conninfo string
		want     bool
	}{
		{"postgres://u@localhost:5432/db", true},
		{"postgres://u@127.0.0.1/db", true},
		{"postgres://u@[::1]:5433/db", true},
		{"host=/var/run/postgresql dbname=db", true},
		{"postgres://u@LOCALHOST,127.0.0.2/db", true},
		{"postgres://u@db.example.com/db", false},
		{"host=10.0.0.5 dbname=db", false},
		{"postgres://u@localhost,db.example.com/db", false},
		{"postgres://u@%zz/db", false},
	}
	for _, tt := range tests {
		if got := LocalAddress(tt.conninfo); got != tt.want {
			t.Errorf("LocalAddress(%q) = %t, want %t", tt.conninfo, got, tt.want)
		}
	}
}
