package cluster

import (
	"fmt"
	"os/user"
	"strconv"
)

func lookupPostgres() (uid, gid uint32, err error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return 0, 0, fmt.Errorf("%w (install PostgreSQL, which creates it, or run as another user)", err)
	}
	ui, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gi, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("postgres user has ids %s:%s", u.Uid, u.Gid)
	}
	return uint32(ui), uint32(gi), nil
}
