package cluster

import (
	"errors"
	"fmt"
)

// StaleEpochError is returned for anything carrying an epoch lower than the
// highest this node has seen: it is refused and changes nothing.
type StaleEpochError struct {
	What    string
	Got     uint64
	Highest uint64
}

func (e *StaleEpochError) Error() string {
	return fmt.Sprintf("cluster: %s from epoch %d refused: highest epoch seen is %d (sender is fenced)", e.What, e.Got, e.Highest)
}

// Errors callers act on.
var (
	// ErrNotPrimary: the call needs this node to be the primary.
	ErrNotPrimary = errors.New("cluster: this node is not the primary")
	// ErrWitness: a witness neither records nor takes over.
	ErrWitness = errors.New("cluster: this node is a witness")
	// ErrNoPeer: there is no other data node to hand over to.
	ErrNoPeer = errors.New("cluster: no other data node")
)
