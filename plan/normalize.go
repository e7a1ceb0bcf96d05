package plan

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
)

// normalized returns a deep copy of s with every list in a canonical
// order, so that Build and Fingerprint do not depend on the order in which
// inspection or a fixture listed things.
func (s Snapshot) normalized() Snapshot {
	b, _ := json.Marshal(s)
	var c Snapshot
	_ = json.Unmarshal(b, &c)
	slices.Sort(c.Unknown)
	slices.Sort(c.Me.MemberOf)
	slices.Sort(c.Me.AdminOf)
	slices.Sort(c.Collations)
	slices.SortFunc(c.Roles, func(a, b Role) int { return cmp.Compare(a.Name, b.Name) })
	for i := range c.Roles {
		r := &c.Roles[i]
		slices.Sort(r.Config)
		slices.SortFunc(r.MemberOf, func(a, b Membership) int { return cmp.Compare(a.Role, b.Role) })
		slices.SortFunc(r.DatabaseConfig, func(a, b DatabaseSetting) int { return cmp.Compare(a.Database, b.Database) })
	}
	slices.SortFunc(c.AvailableExtensions, func(a, b AvailableExtension) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), compareVersions(a.Version, b.Version))
	})
	slices.SortFunc(c.Slots, func(a, b Slot) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(c.Databases, func(a, b Database) int { return cmp.Compare(a.Name, b.Name) })
	for i := range c.Databases {
		c.Databases[i].Contents.sort()
	}
	return c
}

func (c *Contents) sort() {
	slices.SortFunc(c.Schemas, func(a, b Schema) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(c.Extensions, func(a, b Extension) int { return cmp.Compare(a.Name, b.Name) })
	slices.Sort(c.Languages)
	slices.SortFunc(c.Tables, func(a, b Table) int { return compareRefs(a.Ref(), b.Ref()) })
	for i := range c.Tables {
		slices.SortFunc(c.Tables[i].ForeignKeys, func(a, b ForeignKey) int { return cmp.Compare(a.Name, b.Name) })
	}
	slices.SortFunc(c.Views, func(a, b View) int { return compareRefs(TableRef{a.Schema, a.Name}, TableRef{b.Schema, b.Name}) })
	for i := range c.Views {
		slices.SortFunc(c.Views[i].DependsOn, compareRefs)
	}
	slices.SortFunc(c.Sequences, func(a, b Sequence) int { return compareRefs(TableRef{a.Schema, a.Name}, TableRef{b.Schema, b.Name}) })
	slices.SortFunc(c.Types, compareObjects)
	slices.SortFunc(c.SuperuserObjects, compareObjects)
	slices.Sort(c.Publications)
	slices.SortFunc(c.Subscriptions, func(a, b Subscription) int { return cmp.Compare(a.Name, b.Name) })
	slices.Sort(c.Tablespaces)
}

func compareRefs(a, b TableRef) int {
	return cmp.Or(cmp.Compare(a.Schema, b.Schema), cmp.Compare(a.Name, b.Name))
}

func compareObjects(a, b Object) int {
	return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Schema, b.Schema), cmp.Compare(a.Name, b.Name))
}

// Fingerprint is the SHA-256 of the snapshot's structural facts: what a
// plan depends on. Sizes, row estimates, sessions, slots, the server's
// start time and whether target tables hold rows are left out: they change
// all the time and would make every saved plan stale.
func (s Snapshot) Fingerprint() string {
	b, _ := json.Marshal(s.structural())
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (s Snapshot) structural() Snapshot {
	c := s.normalized()
	c.Server.StartTime = ""
	c.Activity = Activity{}
	c.Slots = nil
	c.SubscriptionCount = 0
	for i := range c.Databases {
		d := &c.Databases[i]
		d.SizeBytes = 0
		for j := range d.Tables {
			d.Tables[j].EstRows, d.Tables[j].Bytes, d.Tables[j].HasRows = 0, 0, nil
		}
		d.LargeObjects = min(d.LargeObjects, 1)
	}
	return c
}
