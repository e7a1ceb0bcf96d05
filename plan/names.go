package plan

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// ReplicationNames are the publication, slot and subscription of one
// database's migration to one target.
type ReplicationNames struct {
	Publication  string `json:"publication"`
	Slot         string `json:"slot"`
	Subscription string `json:"subscription"`
}

// maxIdentifier is the longest identifier PostgreSQL keeps (NAMEDATALEN-1).
const maxIdentifier = 63

// NamesFor computes pghaul_<db>_<hash>_pub|_slot|_sub: <db> is the database
// name lower-cased with every character outside [a-z0-9_] replaced by _,
// cut so the name fits in 63 bytes; <hash> is the first 8 hex digits of
// the SHA-256 of the exact database name, a NUL byte and the target's
// system identifier, so that two migrations of one database to two
// targets never share a slot.
func NamesFor(database, targetSystemID string) ReplicationNames {
	var b strings.Builder
	for _, r := range strings.ToLower(database) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	sum := sha256.Sum256([]byte(database + "\x00" + targetSystemID))
	hash := hex.EncodeToString(sum[:])[:8]
	base := b.String()
	room := maxIdentifier - len("pghaul_") - len("_") - len(hash) - len("_slot")
	if len(base) > room {
		base = base[:room]
	}
	prefix := "pghaul_" + base + "_" + hash
	return ReplicationNames{Publication: prefix + "_pub", Slot: prefix + "_slot", Subscription: prefix + "_sub"}
}

// compareVersions orders extension versions: numeric parts numerically
// ("1.10" > "1.9"), other parts as text.
func compareVersions(a, b string) int {
	pa, pb := versionParts(a), versionParts(b)
	for i := range min(len(pa), len(pb)) {
		na, errA := strconv.Atoi(pa[i])
		nb, errB := strconv.Atoi(pb[i])
		var c int
		if errA == nil && errB == nil {
			c = cmp.Compare(na, nb)
		} else {
			c = cmp.Compare(pa[i], pb[i])
		}
		if c != 0 {
			return c
		}
	}
	return cmp.Compare(len(pa), len(pb))
}

func versionParts(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == '.' || r == '-' || r == '_' })
}
