package pairing

import (
	"errors"
	"net"
	"time"
)

func timeNowPlus() time.Time { return time.Now().Add(200 * time.Millisecond) }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
