package ringstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nvrfw/nvr/ringstore/vfs"
)

// Inspect reads a closed volume's figures from its index without recovering
// or writing anything: capacity, slots, retention per stream, and the write
// rate and commit latencies the store last recorded. It fails with
// ErrIdentityMismatch when the index belongs to another volume, and with a
// lock timeout while a store has the volume open.
func Inspect(ctx context.Context, dir string, opts Options) (VolumeInfo, Stats, error) {
	fs := opts.FS
	if fs == nil {
		fs = vfs.Default
	}
	vol, err := readVolume(fs, dir)
	if err != nil {
		return VolumeInfo{}, Stats{}, fmt.Errorf("inspect %s: %w", dir, err)
	}
	ip := indexPathOr(dir, opts.IndexPath)
	if ok, err := vfs.Default.Exists(ip); err != nil || !ok {
		return vol, Stats{}, fmt.Errorf("inspect %s: index %s missing (run `nvrd store rebuild`)", dir, ip)
	}
	db, err := bolt.Open(ip, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return vol, Stats{}, fmt.Errorf("inspect %s: open index %s (is the store open elsewhere?): %w", dir, ip, err)
	}
	defer db.Close()
	st := Stats{Slots: vol.Slots, SlotSize: vol.SlotSize, Capacity: int64(vol.Slots) * vol.SlotSize}
	err = db.View(func(tx *bolt.Tx) error {
		m, err := loadMeta(tx)
		if err != nil {
			return err
		}
		if m.volumeID != vol.ID {
			return fmt.Errorf("%w: index %s belongs to volume %q, %s is volume %q", ErrIdentityMismatch, ip, m.volumeID, dir, vol.ID)
		}
		slots, err := loadSlots(tx, vol.Slots)
		if err != nil {
			return err
		}
		for i, h := range slots {
			st.Used += h.end
			if h.end == 0 && h.state != slotHead {
				st.FreeSlots++
			}
			if h.state == slotSuspect {
				st.SuspectSlots = append(st.SuspectSlots, i)
			}
		}
		metas, err := loadStreams(tx)
		if err != nil {
			return err
		}
		s := &Store{metas: metas}
		st.Streams, _ = s.Streams()
		if v := tx.Bucket(bktMeta).Get([]byte("stats")); len(v) == 24 {
			st.CommitLatency = time.Duration(binary.BigEndian.Uint64(v))
			st.CommitLatencyP99 = time.Duration(binary.BigEndian.Uint64(v[8:]))
			st.WriteRate = float64(binary.BigEndian.Uint64(v[16:]))
		}
		return nil
	})
	if err != nil {
		return vol, Stats{}, fmt.Errorf("inspect %s: %w", dir, err)
	}
	return vol, st, ctx.Err()
}

// encodeRuntimeStats packs the figures Inspect reports from a closed store.
func encodeRuntimeStats(st Stats) []byte {
	b := binary.BigEndian.AppendUint64(nil, uint64(st.CommitLatency))
	b = binary.BigEndian.AppendUint64(b, uint64(st.CommitLatencyP99))
	return binary.BigEndian.AppendUint64(b, uint64(st.WriteRate))
}
