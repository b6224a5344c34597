package memfs

import (
	"fmt"
	"math/rand/v2"
	"sort"
)

// DataSurvival says which unsynced file data a simulated power cut keeps.
type DataSurvival uint8

// The data variants of CrashOptions.
const (
	// DataNone: no unsynced write survives.
	DataNone DataSurvival = iota
	// DataAll: every unsynced write survives, and every file keeps its
	// current length (writes dropped by DropUnsynced are lost all the same).
	DataAll
	// DataRandom: each sector of each unsynced write survives or not, at
	// random (CrashOptions.Seed); where several writes touched a sector,
	// the last surviving one wins.
	DataRandom
	// DataTorn: every unsynced write survives except the most recent write
	// on the FS, of which only a prefix of its sectors (possibly none, never
	// all of a multi-sector write) survives.
	DataTorn
)

// String names the variant.
func (d DataSurvival) String() string {
	switch d {
	case DataNone:
		return "none"
	case DataAll:
		return "all"
	case DataRandom:
		return "random"
	case DataTorn:
		return "torn"
	}
	return fmt.Sprintf("data(%d)", uint8(d))
}

// DirSurvival says which unsynced directory entries a simulated power cut
// keeps.
type DirSurvival uint8

// The directory variants of CrashOptions.
const (
	// DirsSynced: every directory holds exactly the entries of its last SyncDir.
	DirsSynced DirSurvival = iota
	// DirsRandom: each entry that changed since the last SyncDir (created,
	// renamed, removed) is, at random, in its synced or its current state.
	DirsRandom
	// DirsAll: every directory holds its current entries.
	DirsAll
)

// String names the variant.
func (d DirSurvival) String() string {
	switch d {
	case DirsSynced:
		return "synced-dirs"
	case DirsRandom:
		return "random-dirs"
	case DirsAll:
		return "all-dirs"
	}
	return fmt.Sprintf("dirs(%d)", uint8(d))
}

// CrashOptions selects what a simulated power cut keeps. The zero value is
// the harshest legal outcome on old content: only what was synced.
type CrashOptions struct {
	// Data is which unsynced file data survives; zero: DataNone.
	Data DataSurvival
	// ZeroLost makes sectors written since the last sync that do not
	// survive read as zeros instead of their previous durable content (a
	// zero-filled tail). Default false: they keep the old content.
	ZeroLost bool
	// Dirs is which unsynced directory entries survive; zero: DirsSynced.
	Dirs DirSurvival
	// Seed drives the random choices; the same state, options and seed
	// give the same clone.
	Seed uint64
}

// String formats the options for test messages.
func (o CrashOptions) String() string {
	s := fmt.Sprintf("data=%s %s seed=%d", o.Data, o.Dirs, o.Seed)
	if o.ZeroLost {
		s += " zero-lost"
	}
	return s
}

// CrashClone returns the file system a power cut at this instant could
// leave behind: a new FS, with no hook and not frozen, in which everything
// that survived is durable. The receiver is not changed.
func (fsys *FS) CrashClone(opts CrashOptions) *FS {
	fsys.mu.Lock()
	defer fsys.mu.Unlock()
	c := &cloner{
		opts: opts,
		rng:  rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		last: fsys.wseq,
		done: map[*node]*node{},
	}
	return &FS{root: c.clone(fsys.root)}
}

type cloner struct {
	opts CrashOptions
	rng  *rand.Rand
	last uint64 // sequence of the FS's most recent write
	done map[*node]*node
}

func (c *cloner) clone(n *node) *node {
	if m, ok := c.done[n]; ok {
		return m
	}
	if !n.dir {
		data := c.fileData(n)
		m := &node{data: data, durable: data.clone()}
		c.done[n] = m
		return m
	}
	m := newDir()
	c.done[n] = m
	names := sortedNames(n.entries)
	for name := range n.synced {
		if n.entries[name] == nil {
			names = append(names, name)
		}
	}
	sort.Strings(names) // a seed-stable order

	for _, name := range names {
		cur, syn := n.entries[name], n.synced[name]
		keep := syn
		switch {
		case cur == syn:
		case c.opts.Dirs == DirsAll:
			keep = cur
		case c.opts.Dirs == DirsRandom && c.rng.IntN(2) == 0:
			keep = cur
		}
		if keep != nil {
			cm := c.clone(keep)
			m.entries[name] = cm
			m.synced[name] = cm
		}
	}
	return m
}

// fileData computes a file's content after the crash.
func (c *cloner) fileData(n *node) content {
	out := n.durable.clone()
	if c.opts.Data == DataAll {
		// Every pending write reaches the disk (not writes dropped by
		// DropUnsynced), and the file keeps its current length.
		for _, w := range n.pending {
			out.writeAt(w.img, w.off)
		}
		out.grow(n.data.size)
		return out
	}
	type sector struct {
		img []byte // last surviving image; nil: none survived
		len int64  // the longest image of the sector
	}
	final := map[int64]*sector{}
	var order []int64
	for _, w := range n.pending {
		nsec := (int64(len(w.img)) + SectorSize - 1) / SectorSize
		tornKeep := nsec
		if c.opts.Data == DataTorn && w.seq == c.last {
			tornKeep = c.rng.Int64N(nsec)
		}
		for s := int64(0); s < nsec; s++ {
			img := w.img[s*SectorSize : min((s+1)*SectorSize, int64(len(w.img)))]
			var keep bool
			switch c.opts.Data {
			case DataRandom:
				keep = c.rng.IntN(2) == 0
			case DataTorn:
				keep = s < tornKeep
			}
			off := w.off + s*SectorSize
			sec := final[off]
			if sec == nil {
				sec = &sector{}
				final[off] = sec
				order = append(order, off)
			}
			sec.len = max(sec.len, int64(len(img)))
			if keep {
				sec.img = img
			}
		}
	}
	for _, off := range order {
		sec := final[off]
		switch {
		case sec.img != nil:
			out.writeAt(sec.img, off)
		case c.opts.ZeroLost:
			out.zero(off, sec.len)
		}
	}
	return out
}
