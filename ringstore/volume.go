package ringstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nvrfw/nvr/ringstore/vfs"
)

// FormatVersion is the on-disk format version Format writes.
const FormatVersion = 1

// Slot size bounds for the automatic choice.
const (
	minAutoSlot = 4 << 20
	maxAutoSlot = 1 << 30
	// MinSlotSize is the smallest slot size Format accepts.
	MinSlotSize = 1 << 20
)

// FormatOptions configures Format.
type FormatOptions struct {
	// FS is the file system; nil means vfs.Default.
	FS vfs.FS
	// Size is the total bytes of slot files (required).
	Size int64
	// SlotSize is the size of each slot file; 0 means Size/64 clamped to
	// [4 MiB, 1 GiB]. It is rounded down to a multiple of 4 KiB.
	SlotSize int64
	// IndexPath is the bbolt index file; "" means DIR/index.db.
	IndexPath string
	// Progress, when set, is called after each slot file is allocated.
	Progress func(done, total int64)

	knobs testKnobs
}

// VolumeInfo describes a formatted volume.
type VolumeInfo struct {
	ID            string    `json:"id"`
	SlotSize      int64     `json:"slot_size"`
	Slots         int       `json:"slots"`
	Created       time.Time `json:"created"`
	FormatVersion int       `json:"format_version"`
}

// testKnobs are switches only tests set (see export_test.go).
type testKnobs struct {
	// skipGenCheck makes readers and recovery ignore generations.
	skipGenCheck bool
	// skipDirSync makes Format skip SyncDir.
	skipDirSync bool
	// maxOpenFiles, when set, replaces maxOpenSlots.
	maxOpenFiles int
}

func volumePath(dir string) string { return filepath.Join(dir, "VOLUME") }
func slotsDir(dir string) string   { return filepath.Join(dir, "slots") }
func slotPath(dir string, i int) string {
	return filepath.Join(slotsDir(dir), fmt.Sprintf("%06d.slot", i))
}

func indexPathOr(dir, p string) string {
	if p == "" {
		return filepath.Join(dir, "index.db")
	}
	return p
}

// encodeVolume renders the VOLUME file: one JSON line, then "crc32c XXXXXXXX".
func encodeVolume(v VolumeInfo) []byte {
	js, _ := json.Marshal(v) // a struct of plain fields cannot fail
	crc := crc32.Checksum(js, castagnoli)
	return fmt.Appendf(nil, "%s\ncrc32c %08x\n", js, crc)
}

func decodeVolume(b []byte) (VolumeInfo, error) {
	line, rest, ok := bytes.Cut(b, []byte("\n"))
	if !ok {
		return VolumeInfo{}, errors.New("volume header truncated")
	}
	want, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(string(rest), "crc32c ")), 16, 32)
	if err != nil {
		return VolumeInfo{}, fmt.Errorf("volume header checksum line: %w", err)
	}
	if got := crc32.Checksum(line, castagnoli); got != uint32(want) {
		return VolumeInfo{}, fmt.Errorf("volume header checksum %08x, want %08x", got, want)
	}
	var v VolumeInfo
	if err := json.Unmarshal(line, &v); err != nil {
		return VolumeInfo{}, fmt.Errorf("volume header: %w", err)
	}
	if v.ID == "" || v.SlotSize < MinSlotSize || v.Slots < 2 {
		return VolumeInfo{}, fmt.Errorf("volume header: implausible %+v", v)
	}
	if v.FormatVersion != FormatVersion {
		return VolumeInfo{}, fmt.Errorf("volume format version %d, this firmware reads %d", v.FormatVersion, FormatVersion)
	}
	return v, nil
}

// readVolume reads DIR/VOLUME; ErrNotFormatted when it does not exist.
func readVolume(fs vfs.FS, dir string) (VolumeInfo, error) {
	p := volumePath(dir)
	ok, err := fs.Exists(p)
	if err != nil {
		return VolumeInfo{}, fmt.Errorf("stat %s: %w", p, err)
	}
	if !ok {
		return VolumeInfo{}, fmt.Errorf("%w: %s missing", ErrNotFormatted, p)
	}
	f, err := fs.Open(p)
	if err != nil {
		return VolumeInfo{}, fmt.Errorf("open %s: %w", p, err)
	}
	defer f.Close()
	n, err := f.Size()
	if err != nil {
		return VolumeInfo{}, fmt.Errorf("size of %s: %w", p, err)
	}
	if n > 4096 {
		return VolumeInfo{}, fmt.Errorf("%s: %d bytes is too large for a volume header", p, n)
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(b, 0); err != nil {
		return VolumeInfo{}, fmt.Errorf("read %s: %w", p, err)
	}
	v, err := decodeVolume(b)
	if err != nil {
		return VolumeInfo{}, fmt.Errorf("%s: %w", p, err)
	}
	return v, nil
}

func newVolumeID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("volume id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// autoSlotSize picks the slot size for a volume of size bytes.
func autoSlotSize(size int64) int64 {
	s := size / 64
	s = max(s, minAutoSlot)
	s = min(s, maxAutoSlot)
	return s / 4096 * 4096
}

// Format lays out a new volume: DIR/VOLUME, DIR/slots/NNNNNN.slot (each
// preallocated), and the index. It refuses a directory that already holds a
// volume. VOLUME is written last, so an interrupted Format leaves no volume
// and can simply be run again.
func Format(ctx context.Context, dir string, opts FormatOptions) (VolumeInfo, error) {
	fs := opts.FS
	if fs == nil {
		fs = vfs.Default
	}
	if opts.Size <= 0 {
		return VolumeInfo{}, fmt.Errorf("format %s: Size is required", dir)
	}
	slot := opts.SlotSize
	if slot == 0 {
		slot = autoSlotSize(opts.Size)
	}
	slot = slot / 4096 * 4096
	if slot < MinSlotSize {
		return VolumeInfo{}, fmt.Errorf("format %s: slot size %d below the minimum %d", dir, slot, MinSlotSize)
	}
	n := int(opts.Size / slot)
	if n < 2 {
		return VolumeInfo{}, fmt.Errorf("format %s: size %d holds %d slots of %d bytes; need at least 2", dir, opts.Size, n, slot)
	}
	if ok, err := fs.Exists(volumePath(dir)); err != nil {
		return VolumeInfo{}, fmt.Errorf("format %s: %w", dir, err)
	} else if ok {
		return VolumeInfo{}, fmt.Errorf("format %s: a volume already exists here (%s)", dir, volumePath(dir))
	}
	id, err := newVolumeID()
	if err != nil {
		return VolumeInfo{}, err
	}
	v := VolumeInfo{ID: id, SlotSize: slot, Slots: n, Created: time.Now().UTC().Truncate(time.Second), FormatVersion: FormatVersion}
	if err := fs.MkdirAll(slotsDir(dir)); err != nil {
		return VolumeInfo{}, fmt.Errorf("format %s: %w", dir, err)
	}
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return VolumeInfo{}, fmt.Errorf("format %s: %w", dir, err)
		}
		if err := allocSlot(fs, slotPath(dir, i), slot); err != nil {
			return VolumeInfo{}, fmt.Errorf("format %s: %w", dir, err)
		}
		if opts.Progress != nil {
			opts.Progress(int64(i+1)*slot, int64(n)*slot)
		}
	}
	if !opts.knobs.skipDirSync {
		if err := fs.SyncDir(slotsDir(dir)); err != nil {
			return VolumeInfo{}, fmt.Errorf("format %s: %w", dir, err)
		}
	}
	ip := indexPathOr(dir, opts.IndexPath)
	if err := createIndex(ip, v); err != nil {
		return VolumeInfo{}, fmt.Errorf("format %s: %w", dir, err)
	}
	if err := writeFileAtomic(fs, dir, volumePath(dir), encodeVolume(v), opts.knobs.skipDirSync); err != nil {
		return VolumeInfo{}, fmt.Errorf("format %s: %w", dir, err)
	}
	return v, nil
}

// allocSlot creates (or, after an interrupted format, reopens) a slot file
// and preallocates it.
func allocSlot(fs vfs.FS, p string, size int64) error {
	ok, err := fs.Exists(p)
	if err != nil {
		return err
	}
	var f vfs.File
	if ok {
		f, err = fs.OpenReadWrite(p)
	} else {
		f, err = fs.Create(p)
	}
	if err != nil {
		return fmt.Errorf("create slot: %w", err)
	}
	if err := f.Preallocate(size); err != nil {
		f.Close()
		return fmt.Errorf("preallocate %s: %w", p, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", p, err)
	}
	return f.Close()
}

// writeFileAtomic writes b to p through a temporary file: write, fsync,
// rename, fsync the directory.
func writeFileAtomic(fs vfs.FS, dir, p string, b []byte, skipDirSync bool) error {
	tmp := p + ".tmp"
	if ok, _ := fs.Exists(tmp); ok {
		if err := fs.Remove(tmp); err != nil {
			return fmt.Errorf("remove stale %s: %w", tmp, err)
		}
	}
	f, err := fs.Create(tmp)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := fs.Rename(tmp, p); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	if skipDirSync {
		return nil
	}
	if err := fs.SyncDir(dir); err != nil {
		return fmt.Errorf("sync dir for %s: %w", p, err)
	}
	return nil
}
