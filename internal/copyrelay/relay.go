// Package copyrelay streams a table between two PostgreSQL sessions: the
// source's COPY ... TO STDOUT into the target's COPY ... FROM STDIN, on the
// sessions' sockets, with a stall deadline on every read and write.
package copyrelay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"golang.org/x/time/rate"
)

// Options tune one Relay.
type Options struct {
	// Stall bounds each read from the source and each write to the
	// target (zero: no bound).
	Stall time.Duration
	// Counted gets the rows' bytes (without message headers) as they pass.
	Counted *atomic.Int64
	// BeforeFirstWrite runs once, before the first bytes reach the
	// target: a test build's crash point.
	BeforeFirstWrite func()
	// Limiter, shared by the streams it bounds, paces the bytes written
	// to the target (nil: no limit).
	Limiter *rate.Limiter
}

// relayBuffer is how many bytes one read from the source may take; the
// target's answers are small.
const (
	relayBuffer  = 1 << 20
	answerBuffer = 8 << 10
)

// relayBuffers keeps the source-side buffers between tables: one per
// stream at a time, not one per table for the collector.
var relayBuffers = sync.Pool{New: func() any {
	b := make([]byte, relayBuffer)
	return &b
}}

// relay streams the source's COPY ... TO STDOUT (out) into the target's
// COPY ... FROM STDIN (in) on the two sessions' sockets. The CopyData
// messages the source sends are exactly the ones the target takes, so they
// pass through as they arrive, never split into rows: one large read, one
// write (pgconn's CopyTo hands over one row per call, read 8 KiB at a
// time, and CopyFrom frames them again). Other messages are read and
// handled here. Both sessions are back in sync (ReadyForQuery read) when
// it returns the target's row count or a server's error; when they cannot
// be used again (a lost connection, a cancellation, the target failing
// while the source still streams) Relay closes both.
func Relay(ctx context.Context, src, dst *pgconn.PgConn, out, in string, opt Options) (int64, error) {
	stall, counted, crash := opt.Stall, opt.Counted, opt.BeforeFirstWrite
	if counted == nil {
		counted = new(atomic.Int64)
	}
	if crash == nil {
		crash = func() {}
	}
	if err := src.SyncConn(ctx); err != nil {
		return 0, err
	}
	if err := dst.SyncConn(ctx); err != nil {
		return 0, err
	}
	buf := relayBuffers.Get().(*[]byte)
	defer relayBuffers.Put(buf)
	var stopped atomic.Bool
	// The source's reads and the target's writes may each wait at most
	// stall; the target's reads wait for its answer, which comes only at
	// the end (or on failure).
	s := &wire{conn: src.Conn(), buf: *buf, side: "source", readStall: stall, stopped: &stopped}
	d := &wire{conn: dst.Conn(), buf: make([]byte, answerBuffer), side: "target", writeStall: stall, stopped: &stopped}
	if l := opt.Limiter; l != nil {
		d.pace, d.burst = func(n int) error { return l.WaitN(ctx, n) }, l.Burst()
	}
	stop := context.AfterFunc(ctx, func() {
		// Unblocks a read or write at once; the sessions are then lost.
		stopped.Store(true)
		src.Conn().SetDeadline(time.Unix(1, 0))
		dst.Conn().SetDeadline(time.Unix(1, 0))
	})
	defer stop()
	defer func() {
		if !stopped.Load() { // the sessions go on: no deadline may linger
			src.Conn().SetDeadline(time.Time{})
			dst.Conn().SetDeadline(time.Time{})
		}
	}()
	rows, err := relayStreams(s, d, out, in, counted, crash)
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	var pge *pgconn.PgError
	switch {
	case err == nil:
	case errors.As(err, &pge) && !errors.Is(err, ErrTargetEnded) && ctx.Err() == nil:
		// A server's error: both sessions read up to ReadyForQuery.
	default:
		// Lost, cancelled, or the target failed while the source still
		// streams: neither session can be used again.
		closeRaw(src)
		closeRaw(dst)
	}
	return rows, err
}

func closeRaw(conn *pgconn.PgConn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	conn.Close(ctx)
}

func relayStreams(s, d *wire, out, in string, counted *atomic.Int64, crash func()) (int64, error) {
	// The target first: a COPY it refuses costs no source read.
	if err := d.writeMsg(&pgproto3.Query{String: in}); err != nil {
		return 0, err
	}
	if err := d.expect('G'); err != nil {
		return 0, err
	}
	if err := s.writeMsg(&pgproto3.Query{String: out}); err != nil {
		return 0, err
	}
	if err := s.expect('H'); err != nil {
		// The source refused: end the target's COPY too.
		return 0, errors.Join(err, d.fail("the source refused the copy"))
	}
	// Read the target during the stream: it only writes to say it failed.
	var tag string
	var targetErr error
	targetEnded := make(chan struct{})
	go func() {
		defer close(targetEnded)
		tag, targetErr = d.finish()
	}()
	srcErr := s.forward(d, counted, crash, targetEnded)
	switch {
	case errors.Is(srcErr, ErrTargetEnded):
		<-targetEnded
		if targetErr == nil {
			targetErr = errors.New("the target ended the copy early")
		}
		return 0, fmt.Errorf("%w: %w", ErrTargetEnded, targetErr)
	case srcErr != nil:
		if _, ok := errors.AsType[*pgconn.PgError](srcErr); ok {
			// The source ended the stream with an error: the target's
			// COPY fails with it.
			d.writeMsg(&pgproto3.CopyFail{Message: "the source failed: " + srcErr.Error()})
		} else {
			d.conn.SetDeadline(time.Unix(1, 0)) // the target's reader must not wait
		}
		<-targetEnded
		return 0, srcErr
	}
	if err := d.writeMsg(&pgproto3.CopyDone{}); err != nil {
		return 0, err
	}
	<-targetEnded
	if targetErr != nil {
		return 0, targetErr
	}
	return pgconn.NewCommandTag(tag).RowsAffected(), nil
}

// ErrTargetEnded: the target answered during the stream (an error).
var ErrTargetEnded = errors.New("the target ended the copy")

// wire reads and writes protocol messages on one session's socket.
type wire struct {
	conn net.Conn
	buf  []byte
	// pace waits until n more bytes may be written (a rate limit), in
	// pieces of at most burst; nil: no limit.
	pace  func(n int) error
	burst int
	// r..w is what was read and not yet used.
	r, w int
	// side names the server ("source", "target") in errors.
	side string
	// readStall and writeStall bound each read and write (0: no bound);
	// stopped says the relay was cancelled, whose past deadline a new one
	// must not replace.
	readStall, writeStall time.Duration
	stopped               *atomic.Bool
}

// StallError is a COPY stream that made no progress for
// parallel.stall_timeout: the server is alive (the connection stands) but
// silent, as behind a stopped proxy.
type StallError struct {
	Side string // source or target
	For  time.Duration
}

func (e *StallError) Error() string {
	what := "sent nothing"
	if e.Side == "target" {
		what = "took nothing"
	}
	return fmt.Sprintf("the %s %s for %s during the copy (parallel.stall_timeout): it is connected but silent; check it (or what stands between), then rerun apply to resume", e.Side, what, e.For)
}

// deadline bounds the next read (or write) by stall, unless the relay was
// cancelled.
func (c *wire) deadline(set func(time.Time) error, stall time.Duration) {
	if stall <= 0 || c.stopped == nil {
		return
	}
	set(time.Now().Add(stall))
	if c.stopped.Load() {
		set(time.Unix(1, 0))
	}
}

// explain names the server of a failed read or write: a stall, or the
// connection it dropped.
func (c *wire) explain(err error, stall time.Duration) error {
	var ne net.Error
	switch {
	case err == nil || c.stopped != nil && c.stopped.Load():
		return err
	case errors.As(err, &ne) && ne.Timeout() && stall > 0:
		return &StallError{Side: c.side, For: stall}
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
		return fmt.Errorf("the %s dropped the connection during the copy: %w", c.side, err)
	}
	return err
}

func (c *wire) writeMsg(m pgproto3.FrontendMessage) error {
	b, err := m.Encode(nil)
	if err != nil {
		return err
	}
	return c.write(b)
}

// write sends b, bounded by writeStall.
// writePaced writes rows' bytes at the pace the limit allows.
func (c *wire) writePaced(b []byte) error {
	if c.pace == nil {
		return c.write(b)
	}
	for len(b) > 0 {
		n := min(len(b), c.burst)
		if err := c.pace(n); err != nil {
			return err
		}
		if err := c.write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (c *wire) write(b []byte) error {
	c.deadline(c.conn.SetWriteDeadline, c.writeStall)
	_, err := c.conn.Write(b)
	return c.explain(err, c.writeStall)
}

// fill reads more bytes, keeping the unread ones.
func (c *wire) fill() error {
	if c.r > 0 {
		c.w = copy(c.buf, c.buf[c.r:c.w])
		c.r = 0
	}
	if c.w == len(c.buf) {
		c.buf = append(c.buf, make([]byte, len(c.buf))...) // a message larger than the buffer
	}
	c.deadline(c.conn.SetReadDeadline, c.readStall)
	n, err := c.conn.Read(c.buf[c.w:])
	c.w += n
	if n > 0 {
		return nil
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return c.explain(err, c.readStall)
}

// next returns one whole message: its type and body.
func (c *wire) next() (byte, []byte, error) {
	for {
		if c.w-c.r >= 5 {
			n := int(binary.BigEndian.Uint32(c.buf[c.r+1:])) + 1
			if c.w-c.r >= n {
				t, body := c.buf[c.r], c.buf[c.r+5:c.r+n]
				c.r += n
				return t, body, nil
			}
		}
		if err := c.fill(); err != nil {
			return 0, nil, err
		}
	}
}

// expect reads up to the message of type want; an error message is read
// up to its ReadyForQuery and returned.
func (c *wire) expect(want byte) error {
	for {
		t, body, err := c.next()
		if err != nil {
			return err
		}
		switch t {
		case want:
			return nil
		case 'E':
			return c.failed(body)
		case 'N', 'S', 'A': // notices, parameter changes, notifications
		default:
			return fmt.Errorf("unexpected message %q from the server", t)
		}
	}
}

// failed returns the server's error of an ErrorResponse body, once the
// messages up to its ReadyForQuery are read.
func (c *wire) failed(body []byte) error {
	pge := pgError(body)
	for {
		t, _, err := c.next()
		if err != nil {
			return err
		}
		if t == 'Z' {
			return pge
		}
	}
}

// finish reads a server's answer to the end of its COPY: the command tag,
// or its error (both up to ReadyForQuery).
func (c *wire) finish() (string, error) {
	tag := ""
	var failed error
	for {
		t, body, err := c.next()
		if err != nil {
			return "", err
		}
		switch t {
		case 'C':
			if len(body) > 0 {
				tag = string(body[:len(body)-1])
			}
		case 'E':
			failed = pgError(body)
		case 'Z':
			return tag, failed
		}
	}
}

// fail ends the target's COPY with CopyFail and reads its answer.
func (c *wire) fail(msg string) error {
	if err := c.writeMsg(&pgproto3.CopyFail{Message: msg}); err != nil {
		return err
	}
	_, err := c.finish()
	if pge, ok := errors.AsType[*pgconn.PgError](err); ok && pge.Code == "57014" {
		return nil // the expected "COPY from stdin failed"
	}
	return err
}

// forward passes the source's CopyData messages to dst until CopyDone and
// the source's ReadyForQuery. A partial message passes too: only its
// header has to be read whole.
func (c *wire) forward(dst *wire, counted *atomic.Int64, crash func(), targetEnded <-chan struct{}) error {
	inData := 0 // bytes of the current CopyData message not yet passed
	first := true
	for {
		// Pass what belongs to CopyData messages, from c.r on.
		start, end, payload := c.r, c.r, 0
		for {
			if inData > 0 {
				n := min(inData, c.w-end)
				end += n
				payload += n
				inData -= n
				if inData > 0 {
					break // the rest of it is not read yet
				}
				continue
			}
			if c.w-end < 5 || c.buf[end] != 'd' {
				break
			}
			inData = int(binary.BigEndian.Uint32(c.buf[end+1:])) - 4
			end += 5
		}
		if end > start {
			if first {
				first = false
				crash()
			}
			if err := dst.writePaced(c.buf[start:end]); err != nil {
				select {
				case <-targetEnded:
					return ErrTargetEnded
				default:
					return err
				}
			}
			counted.Add(int64(payload))
			c.r = end
		}
		select {
		case <-targetEnded:
			return ErrTargetEnded
		default:
		}
		if inData > 0 || c.w-c.r < 5 || c.w-c.r < int(binary.BigEndian.Uint32(c.buf[c.r+1:]))+1 {
			if err := c.fill(); err != nil {
				return err
			}
			continue
		}
		// A whole message other than CopyData.
		t, body, err := c.next()
		if err != nil {
			return err
		}
		switch t {
		case 'c': // CopyDone: CommandComplete (or an error) and ReadyForQuery follow
			_, err := c.finish()
			return err
		case 'E':
			return c.failed(body)
		case 'N', 'S', 'A':
		default:
			return fmt.Errorf("unexpected message %q from the source during COPY", t)
		}
	}
}

func pgError(body []byte) error {
	var m pgproto3.ErrorResponse
	if err := m.Decode(body); err != nil {
		return fmt.Errorf("decode server error: %w", err)
	}
	return pgconn.ErrorResponseToPgError(&m)
}
