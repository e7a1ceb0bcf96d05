package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written in Go syntax ("30s", "24h", "1h30m").
type Duration time.Duration

// UnmarshalYAML parses Go duration syntax; the duration must be positive.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		return fmt.Errorf("expected a duration like 30s, 15m or 24h, got %s", show(n))
	}
	if v <= 0 {
		return fmt.Errorf("must be positive, got %s", n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the Go syntax back.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// String is the Go syntax of the duration.
func (d Duration) String() string { return time.Duration(d).String() }

// ByteSize is a number of bytes, written as a plain integer or with a unit:
// kB, MB, GB, TB are powers of 1000; KiB, MiB, GiB, TiB powers of 1024.
type ByteSize int64

var sizeUnits = []struct {
	suffix string
	factor int64
}{
	// Longest suffixes first, so "GiB" is not read as "B".
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12}, {"b", 1},
}

// ParseByteSize parses "10GB", "512MiB", "1.5GiB" or "1048576".
func ParseByteSize(s string) (ByteSize, error) {
	num, factor := strings.TrimSpace(s), int64(1)
	lower := strings.ToLower(num)
	for _, u := range sizeUnits {
		if strings.HasSuffix(lower, u.suffix) {
			num, factor = strings.TrimSpace(num[:len(num)-len(u.suffix)]), u.factor
			break
		}
	}
	if n, err := strconv.ParseInt(num, 10, 64); err == nil && n >= 0 && n <= (1<<62)/factor {
		return ByteSize(n * factor), nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || f*float64(factor) > 1<<62 || strings.ContainsAny(num, "eEnN") {
		return 0, fmt.Errorf("expected a size like 10GB, 512MiB or a number of bytes, got %q", s)
	}
	return ByteSize(f * float64(factor)), nil
}

// UnmarshalYAML accepts what ParseByteSize does.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a size like 10GB, 512MiB or a number of bytes, got %s", show(n))
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// String renders the size in binary units for people: "1.5 GiB".
func (b ByteSize) String() string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", int64(b))
	}
	div, exp := int64(unit), 0
	for n := int64(b) / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}
