package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// terminalHandler writes log records for a person at a terminal: the
// message, its attributes in brackets, "warning:" or "error:" in front
// where it matters; no timestamps or levels (-d and --log-format json give
// the full lines, and off a terminal they stay as they are).
type terminalHandler struct {
	w     io.Writer
	mu    *sync.Mutex
	attrs []slog.Attr
}

func newTerminalHandler(w io.Writer) *terminalHandler {
	return &terminalHandler{w: w, mu: &sync.Mutex{}}
}

func (h *terminalHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *terminalHandler) Handle(_ context.Context, r slog.Record) error {
	var kv []string
	add := func(a slog.Attr) bool {
		if v := a.Value.String(); v != "" {
			kv = append(kv, a.Key+" "+v)
		}
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	line := r.Message
	if len(kv) > 0 {
		line += " (" + strings.Join(kv, ", ") + ")"
	}
	switch {
	case r.Level >= slog.LevelError:
		line = "error: " + line
	case r.Level >= slog.LevelWarn:
		line = "warning: " + line
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := fmt.Fprintln(h.w, line)
	return err
}

func (h *terminalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

func (h *terminalHandler) WithGroup(string) slog.Handler { return h }
